"""Deterministic, realistic seeding of a ``Site`` with a university course catalog.

Why the details: the loader under test must survive what a real catalog holds, so the seed puts
in, on purpose and reproducibly for a given ``seed``:

* course pages with ~``body_kb`` KB HTML bodies (headings, paragraphs, lists, tables), department
  pages they hang under (``parent``), and non-ASCII text (é, ü, 中文, emoji);
* ~3 % unpublished pages (draft, private, pending, future, trash) and password-protected ones;
* media, mostly images attached to pages — some to unpublished pages, which WordPress counts in
  ``X-WP-Total`` but leaves out of the list;
* modified dates spread over ``years`` years, including edits inside each DST fall-back hour
  (the same local ``01:30`` happening twice), and an optional ``tie_block`` of pages that share
  one ``modified`` second (a bulk update), which breaks ``orderby=modified`` paging;
* a few ``[gallery]`` shortcodes, whose rendered ids change with their position in a response.

Everything is generated from one ``random.Random(seed)``; seeding 40,000 records takes seconds.
"""

from __future__ import annotations

import gc
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any

from .site import Site

DEPARTMENTS = (
    ("ACC", "Accounting"), ("ANT", "Anthropology"), ("ARH", "Art History"),
    ("AST", "Astronomy"), ("BIO", "Biology"), ("BME", "Biomedical Engineering"),
    ("CHE", "Chemistry"), ("CHI", "Chinese"), ("CLA", "Classical Studies"),
    ("CS", "Computer Science"), ("ECO", "Economics"), ("EDU", "Education"), ("ENG", "English"),
    ("ENV", "Environmental Science"), ("FRE", "French"), ("GER", "German"), ("HIS", "History"),
    ("LIN", "Linguistics"), ("MA", "Mathematics"), ("MUS", "Music"), ("PHI", "Philosophy"),
    ("PHY", "Physics"), ("PO", "Political Science"), ("PSY", "Psychology"),
    ("REL", "Religion"), ("SOC", "Sociology"), ("SPA", "Spanish"), ("STA", "Statistics"),
    ("THE", "Theatre"), ("WGS", "Women's, Gender & Sexuality Studies"),
)  # fmt: skip
COURSE_PATTERNS = (
    "Introduction to {s}", "Foundations of {s}", "Topics in {s}", "{s} Laboratory",
    "Advanced {s}", "Seminar in {s}", "Research Methods in {s}", "{s} and Society",
    "Quantitative Methods for {s}", "History of {s}", "Independent Study in {s}",
    "Senior Thesis in {s}", "Honors {s}", "{s} Practicum", "Writing in {s}",
    "Contemporary Issues in {s}", "Field Work in {s}", "Theory and Practice of {s}",
)  # fmt: skip
SPECIAL_TITLES = {
    "FRE": ("Littérature française moderne", "Études francophones", "Le cinéma français"),
    "GER": ("Deutsche Grammatik für Fortgeschrittene", "Übersetzung und Kultur"),
    "CHI": ("Elementary Chinese 中文入门", "Classical Chinese 古代汉语", "Business Chinese 商务中文"),
    "SPA": ("Español para hispanohablantes", "Música y literatura del Caribe 🎶"),
    "ENV": ("Field Ecology 🌿", "Climate Change: Science & Policy"),
    "MUS": ("Música latinoamericana", "Bach–Mendelssohn: Choral Traditions"),
    "CS": ("Machine Learning 🤖", "Algorithms -- Design and Analysis"),
}
SUFFIXES = ("", "", "", "A", "H", "W")

_SUBJECT_WORDS = (
    "primary sources", "laboratory techniques", "data analysis", "case studies",
    "ethical frameworks", "field observations", "statistical models", "historical context",
    "experimental design", "peer review", "scholarly writing", "oral presentations",
    "computational tools", "archival research", "public policy", "global perspectives",
)  # fmt: skip
_VERBS = (
    "examine", "analyze", "compare", "evaluate", "apply", "interpret", "design",
    "critique", "synthesize", "investigate", "model", "present",
)  # fmt: skip
_OPENERS = (
    "Students will {v} {w} and {w2}.",
    "The course emphasizes {w} through weekly assignments that {v} {w2}.",
    "Readings draw on {w}, with discussion sections devoted to {w2}.",
    "Assessment combines problem sets, a midterm examination, and a final project on {w}.",
    "Throughout the semester, participants {v} {w} in small groups.",
    "Guest lecturers from partner institutions introduce {w} and {w2}.",
    "Prior exposure to {w} is helpful but not required.",
    "Lab sessions meet weekly; safety training must be completed before the first session.",
    "This course satisfies the general education requirement in {w}.",
)  # fmt: skip
_FOREIGN = (
    "Le cours aborde la littérature, la société et l’histoire culturelle — café, théâtre, "
    "poésie et révolution — à travers des textes choisis.",
    "Die Lehrveranstaltung vermittelt Grundlagen der Übersetzung; Prüfungsleistung: "
    "Hausarbeit (ca. 15 Seiten) und mündliche Prüfung.",
    "本课程介绍中文的基础知识，包括发音、汉字和日常会话。学生将练习听、说、读、写。",
    "Field trips 🌿🦋 to the coastal reserve are part of the course; bring boots 🥾.",
    "Naïve Bayes, Gödel’s theorems and the Schrödinger equation — résumé of key ideas.",
)
_INSTRUCTORS = (
    "Prof. A. Okafor", "Dr. M. Lindqvist", "Prof. J. García", "Dr. S. Nakamura",
    "Prof. R. Feldman", "Dr. L. Dubois", "Prof. K. Müller", "Dr. W. Zhang", "Prof. E. Rossi",
)  # fmt: skip
_DAYS = ("MWF", "TR", "MW", "F", "T")
_TIMES = ("8:00 am – 8:50 am", "10:10 am – 11:00 am", "12:30 pm – 1:45 pm", "3:30 pm – 4:45 pm")
_SIZES = ((1600, 1067), (1200, 800), (2048, 1365), (800, 600), (1920, 1080), (1080, 1350))


@dataclass(eq=False)
class _Plan:
    """One record to create, before ids are known."""

    collection: str
    date_gmt: datetime
    modified_gmt: datetime
    fields: dict[str, Any] = field(default_factory=dict)
    parent: _Plan | None = None
    featured: _Plan | None = None
    gallery: list[_Plan] = field(default_factory=list)
    kind: str = "course"
    id: int = 0
    public: bool = True


def _sentence_pool(rng: random.Random) -> list[str]:
    pool = []
    for _ in range(600):
        pool.append(
            rng.choice(_OPENERS).format(
                v=rng.choice(_VERBS), w=rng.choice(_SUBJECT_WORDS), w2=rng.choice(_SUBJECT_WORDS)
            )
        )
    return pool


def _paragraph_pool(rng: random.Random, sentences: list[str]) -> list[str]:
    paragraphs = []
    for i in range(400):
        text = " ".join(rng.choices(sentences, k=rng.randint(3, 7)))
        if i % 33 == 0:
            text += " " + _FOREIGN[(i // 33) % len(_FOREIGN)]
        paragraphs.append(f"<p>{text}</p>\n")
    return paragraphs


@dataclass
class _Blocks:
    """Pre-built pieces of course pages, so 40,000 bodies cost a few list picks each."""

    paragraphs: list[str]
    outcomes: list[str]
    tables: list[str]


def _blocks(rng: random.Random) -> _Blocks:
    paragraphs = _paragraph_pool(rng, _sentence_pool(rng))
    outcomes = []
    for _ in range(200):
        items = "".join(
            f"<li>{rng.choice(_VERBS).capitalize()} {rng.choice(_SUBJECT_WORDS)}</li>\n"
            for _ in range(rng.randint(3, 6))
        )
        outcomes.append(f"<h2>Learning Outcomes</h2>\n<ul>\n{items}</ul>\n")
    tables = []
    for _ in range(200):
        rows = "".join(
            f"<tr><td>{chr(65 + i)}{i + 1}</td><td>{rng.choice(_DAYS)}</td>"
            f"<td>{rng.choice(_TIMES)}</td><td>{rng.choice(_INSTRUCTORS)}</td>"
            f"<td>Room {rng.randint(100, 450)}</td></tr>\n"
            for i in range(rng.randint(1, 4))
        )
        tables.append(
            "<h2>Sections</h2>\n"
            '<table class="course-sections">\n<thead><tr><th>Section</th><th>Days</th>'
            "<th>Time</th><th>Instructor</th><th>Room</th></tr></thead>\n"
            f"<tbody>\n{rows}</tbody>\n</table>\n"
        )
    return _Blocks(paragraphs, outcomes, tables)


def _course_body(rng: random.Random, dept: str, blocks: _Blocks, target: int) -> str:
    parts = [
        "<h2>Course Description</h2>\n",
        rng.choice(blocks.paragraphs),
        f"<h2>Prerequisites</h2>\n<p>{dept} {rng.randint(100, 199)} or consent of instructor.</p>\n",
        rng.choice(blocks.outcomes),
        rng.choice(blocks.tables),
        "<h2>Course Details</h2>\n",
    ]
    size = sum(map(len, parts))
    while size < target:
        for p in rng.choices(blocks.paragraphs, k=(target - size) // 450 + 1):
            parts.append(p)
            size += len(p)
            if size >= target:
                break
    return "".join(parts)


def _fall_back_hours(site: Site, start: datetime, end: datetime) -> list[tuple[datetime, timedelta]]:
    """(transition instant, repeated length) of every DST fall-back between start and end."""
    found = []
    day = start.replace(hour=12, minute=0, second=0)
    previous = day.astimezone(site.tz).utcoffset()
    while day < end:
        nxt = day + timedelta(days=1)
        offset = nxt.astimezone(site.tz).utcoffset()
        if offset is not None and previous is not None and offset < previous:
            t = day
            while t.astimezone(site.tz).utcoffset() == previous:
                t += timedelta(minutes=15)
            if start < t - (previous - offset) and t + (previous - offset) < end:
                found.append((t, previous - offset))
        previous = offset
        day = nxt
    return found


def seed_site(
    site: Site,
    pages: int = 2000,
    media: int = 1000,
    seed: int = 42,
    body_kb: float = 5,
    tie_block: int = 0,
    years: float = 5,
) -> dict[str, Any]:
    """Fill ``site`` with ``pages`` pages and ``media`` attachments; returns a summary dict.

    The summary names the special records so tests can find them: ``tie_pages`` (ids sharing one
    ``modified`` second ``tie_modified_gmt``), ``dst_pages`` (pairs with the same local time in
    a fall-back hour), ``hidden_media`` (attached to unpublished pages) and ``gallery_pages``.
    """
    collecting = gc.isenabled()
    gc.disable()  # ~100k new containers: the cyclic GC would rescan them all, repeatedly
    try:
        return _seed(site, pages, media, seed, body_kb, tie_block, years)
    finally:
        if collecting:
            gc.enable()


def _seed(
    site: Site, pages: int, media: int, seed: int, body_kb: float, tie_block: int, years: float
) -> dict[str, Any]:
    rng = random.Random(seed)
    now = site.now()
    start = now - timedelta(days=365.25 * years)
    span = (now - start).total_seconds()
    target = int(body_kb * 1024)
    blocks = _blocks(rng)
    paragraphs = blocks.paragraphs

    def at(fraction: float) -> datetime:
        return (start + timedelta(seconds=span * fraction)).replace(microsecond=0)

    plans: list[_Plan] = []
    page_plans: list[_Plan] = []
    # The hierarchy: an "Academics" root, one page per department, courses beneath some.
    n_depts = min(len(DEPARTMENTS), max(0, pages - 1)) if pages > 1 else 0
    root: _Plan | None = None
    if pages >= 1:
        root = _Plan("pages", at(0.001), at(rng.uniform(0.5, 0.99)), kind="root")
        root.fields = {
            "title": "Academics",
            "content": "<p>Browse the course catalog by department.</p>\n"
            + "".join(f"<h2>{name}</h2>\n" for _, name in DEPARTMENTS[:n_depts]),
            "menu_order": 0,
        }
        page_plans.append(root)
    dept_plans: dict[str, _Plan] = {}
    for i, (code, name) in enumerate(DEPARTMENTS[:n_depts]):
        d = at(0.002 + 0.0001 * i)
        plan = _Plan("pages", d, at(rng.uniform(0.1, 0.99)), parent=root, kind="dept")
        plan.fields = {
            "title": f"Department of {name}",
            "content": f"<h2>About the Department of {name}</h2>\n" + "".join(rng.choices(paragraphs, k=3)),
            "menu_order": i + 1,
        }
        dept_plans[code] = plan
        page_plans.append(plan)

    n_courses = max(0, pages - len(page_plans))
    capacity = len(DEPARTMENTS) * 900 * len(SUFFIXES)
    if n_courses > capacity:
        raise ValueError(f"at most {capacity} course pages can be seeded")
    for combo in rng.sample(range(capacity), n_courses):
        dept_index, rest = divmod(combo, 900 * len(SUFFIXES))
        number, suffix_index = divmod(rest, len(SUFFIXES))
        code, subject = DEPARTMENTS[dept_index]
        special = SPECIAL_TITLES.get(code)
        if special and rng.random() < 0.15:
            name = rng.choice(special)
        else:
            name = rng.choice(COURSE_PATTERNS).format(s=subject)
        course = f"{code} {number + 100}{SUFFIXES[suffix_index]}"
        date = at(rng.uniform(0.01, 0.999))
        if rng.random() < 0.35:
            modified = date
        else:
            modified = date + (now - date) * (rng.random() ** 0.7)
        plan = _Plan("pages", date, min(modified.replace(microsecond=0), now))
        plan.fields = {
            "title": f"{course} {name}",
            "content": _course_body(rng, code, blocks, target),
            "author": rng.randint(1, 6),
            "menu_order": number,
        }
        if code in dept_plans and rng.random() < 0.15:
            plan.parent = dept_plans[code]
        r = rng.random()
        if r < 0.010:
            plan.fields["status"] = "draft"
        elif r < 0.017:
            plan.fields["status"] = "private"
        elif r < 0.020:
            plan.fields["status"] = "pending"
        elif r < 0.023:
            plan.fields["status"] = "trash"
        elif r < 0.024:
            plan.fields["status"] = "future"
            plan.date_gmt = plan.modified_gmt = now + timedelta(days=rng.randint(1, 60))
        elif r < 0.034:
            plan.fields["password"] = f"pw-{rng.randint(1000, 9999)}"
        plan.public = "status" not in plan.fields
        page_plans.append(plan)
    plans.extend(page_plans)

    # Media: mostly images attached to pages; their upload follows the page's creation.
    attached: dict[_Plan, list[_Plan]] = {}
    courses = [p for p in page_plans if p.kind == "course"] or page_plans
    for i in range(media):
        owner = rng.choice(courses) if courses and rng.random() < 0.85 else None
        r = rng.random()
        mime = "image/jpeg" if r < 0.8 else "image/png" if r < 0.92 else "application/pdf"
        if owner is not None:
            base = owner.date_gmt if owner.date_gmt < now else now - timedelta(days=1)
            date = min(base + timedelta(seconds=rng.randint(60, 30 * 86400)), now)
            stem = owner.fields["title"].split(" ")[0:2]
            name = "-".join(stem).lower()
        else:
            date = at(rng.uniform(0.01, 0.999))
            name = "campus"
        kind = "syllabus" if mime == "application/pdf" else rng.choice(("photo", "lab", "diagram", "poster"))
        width, height = rng.choice(_SIZES)
        plan = _Plan("media", date, date, parent=owner, kind="media")
        plan.fields = {
            "title": f"{name}-{kind}-{i + 1}",
            "mime_type": mime,
            "width": width,
            "height": height,
            "filesize": rng.randint(40_000, 900_000),
            "alt_text": f"{name.upper()} {kind}" if rng.random() < 0.5 else "",
            "author": rng.randint(1, 6),
        }
        if rng.random() < 0.3:
            plan.fields["caption"] = f"<p>{kind.capitalize()} for {name.upper().replace('-', ' ')}</p>\n"
        if rng.random() < 0.1:
            plan.modified_gmt = min(date + timedelta(days=rng.randint(1, 400)), now)
        if owner is not None:
            attached.setdefault(owner, []).append(plan)
            plan.public = owner.public
        plans.append(plan)

    # Featured images and galleries use the attachments of each page.
    gallery_pages: list[_Plan] = []
    for owner, items in attached.items():
        images = [m for m in items if m.fields["mime_type"] != "application/pdf"]
        if images and rng.random() < 0.3:
            owner.featured = images[0]
        if len(images) >= 3 and owner.kind == "course" and rng.random() < 0.35:
            owner.gallery = images[:3]
            gallery_pages.append(owner)
    # A few percent of pages, however many images they have.
    wanted = max(1, len(page_plans) * 3 // 100) if page_plans else 0
    for owner in rng.sample(page_plans, min(len(page_plans), wanted)):
        if not owner.gallery and owner.kind == "course":
            owner.gallery = attached.get(owner, [])[:3]
            gallery_pages.append(owner)

    # Special modified times: DST fall-back pairs, then the tie block.
    published = [p for p in page_plans if p.kind == "course" and p.public and "password" not in p.fields]
    rng.shuffle(published)
    dst_pairs: list[tuple[_Plan, _Plan]] = []
    for transition, length in _fall_back_hours(site, start, now):
        for minutes in (30, 10):
            before = transition - length + timedelta(minutes=minutes)
            after = before + length  # same local wall-clock time, one offset later
            pair = list(islice((p for p in published if p.date_gmt < before - timedelta(hours=1)), 2))
            if len(pair) < 2:
                continue
            for p in pair:
                published.remove(p)
            pair[0].modified_gmt, pair[1].modified_gmt = before, after
            dst_pairs.append((pair[0], pair[1]))
    tie_pages: list[_Plan] = []
    tie_at = (now - timedelta(days=20)).replace(minute=0, second=0)
    if tie_block:
        tie_pages = list(islice((p for p in published if p.date_gmt < tie_at), tie_block))
        if len(tie_pages) < tie_block:
            raise ValueError(f"only {len(tie_pages)} published pages can join the tie block")
        for p in tie_pages:
            p.modified_gmt = tie_at

    # Ids follow creation order (like auto-increment), with gaps where revisions took ids.
    plans.sort(key=lambda p: (p.date_gmt, p.collection != "pages"))
    next_id = site.next_id
    for p in plans:
        p.id = next_id
        next_id += 1 + (rng.randint(1, 3) if rng.random() < 0.25 else 0)

    with site.lock:
        for p in plans:
            fields = dict(p.fields)
            if p.collection == "pages":
                if p.parent is not None:
                    fields["parent"] = p.parent.id
                if p.featured is not None:
                    fields["featured_media"] = p.featured.id
                if p.gallery:
                    ids = ",".join(str(g.id) for g in p.gallery) or str(p.id)
                    content = fields["content"]
                    cut = content.find("<h2>Course Details</h2>")
                    cut = cut if cut >= 0 else len(content)
                    fields["content"] = f'{content[:cut]}[gallery ids="{ids}"]\n{content[cut:]}'
            elif p.parent is not None:
                fields["post"] = p.parent.id
            site.create(
                p.collection,
                id=p.id,
                date_gmt=p.date_gmt,
                modified_gmt=max(p.modified_gmt, p.date_gmt),
                **fields,
            )
    return {
        "pages": len(page_plans),
        "media": media,
        "tie_pages": [p.id for p in tie_pages],
        "tie_modified_gmt": tie_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if tie_pages else None,
        "dst_pages": [(a.id, b.id) for a, b in dst_pairs],
        "hidden_media": [p.id for p in plans if p.collection == "media" and not p.public],
        "gallery_pages": [p.id for p in gallery_pages],
    }
