<?php
/*
 * Seed the test site through WordPress's own PHP API with the awkward content a
 * real bulletin site has and the pipeline must survive: every page status,
 * password protection, nesting, non-ASCII text, bodies over 50 KB, [gallery]
 * shortcodes, media with real image files (some attached to drafts, so counted
 * in X-WP-Total but hidden from lists), modified dates spread over years, the
 * DST repeated hour, and a block of pages sharing one modified second.
 *
 * wp_insert_post/wp_update_post always stamp "now" as modified, so the chosen
 * historical post_modified/post_modified_gmt are written with $wpdb at the end.
 * Deterministic (fixed random seed). Prints a one-line JSON summary on stdout.
 *
 * Env: WP_SEED_PAGES (600), WP_SEED_MEDIA (300), WP_SEED_TIE (160).
 */
require __DIR__ . '/_bootstrap.php';
require_once BULLETIN_WP_LOAD;
require_once ABSPATH . 'wp-admin/includes/image.php';
require_once ABSPATH . 'wp-admin/includes/post.php';

$t0 = microtime(true);
$N_PAGES = (int) (getenv('WP_SEED_PAGES') ?: 600);
$N_MEDIA = (int) (getenv('WP_SEED_MEDIA') ?: 300);
$N_TIE = (int) (getenv('WP_SEED_TIE') ?: 160);

const N_SECTIONS = 5;
const N_DRAFT = 20;
const N_PRIVATE = 10;
const N_PENDING = 3;
const N_FUTURE = 2;
const N_PROTECTED = 10;
const N_LARGE = 6;
const N_GALLERY = 12;
const N_DST = 2;
const N_MEDIA_ON_DRAFT = 10;
const N_MEDIA_ON_PRIVATE = 5;
const N_MEDIA_UNATTACHED = 20;
const TIE_LOCAL = '2022-06-15 12:00:00';       // EDT, so GMT 16:00:00
const DST_LOCAL = '2023-11-05 01:30:00';       // happens twice in America/New_York
const DST_GMTS = ['2023-11-05 05:30:00', '2023-11-05 06:30:00'];

$fixed = N_SECTIONS + N_DRAFT + N_PRIVATE + N_PENDING + N_FUTURE + N_PROTECTED + N_LARGE + N_GALLERY + N_DST;
if ($N_PAGES < $fixed + $N_TIE + 10) {
    bulletin_die("WP_SEED_PAGES=$N_PAGES is too small: need at least " . ($fixed + $N_TIE + 10));
}
if ($N_MEDIA < N_MEDIA_ON_DRAFT + N_MEDIA_ON_PRIVATE + N_MEDIA_UNATTACHED + 10) {
    bulletin_die("WP_SEED_MEDIA=$N_MEDIA is too small");
}
if ((int) $GLOBALS['wpdb']->get_var("SELECT COUNT(*) FROM {$GLOBALS['wpdb']->posts} WHERE post_title LIKE 'Seed %' OR post_title LIKE 'Tie block %'") > 0) {
    bulletin_die('site is already seeded; stop.sh + start.sh give a fresh site');
}
if (wp_timezone_string() !== 'America/New_York') {
    bulletin_die('site timezone is ' . wp_timezone_string() . ', expected America/New_York');
}

mt_srand(20231105);
wp_set_current_user(1); // admin: unfiltered_html, so content is stored as given
wp_defer_term_counting(true);
wp_defer_comment_counting(true);

$WORDS = ['bulletin', 'café', 'Ünïcödé', 'naïve', 'Zürich', '中文', '新闻', 'Ελληνικά', 'русский',
          'emoji 🎉', 'résumé', 'straße', '日本語', '한국어', 'coöperate', '🚀', 'fiancée', 'Ωmega'];

function words($n) {
    $out = [];
    for ($i = 0; $i < $n; $i++) {
        $out[] = $GLOBALS['WORDS'][mt_rand(0, count($GLOBALS['WORDS']) - 1)];
    }
    return implode(' ', $out);
}

function paragraph_html($i) {
    return '<p>Paragraph ' . $i . ': ' . words(12) . '.</p>';
}

$modified = [];   // id => [local, gmt] to stamp at the end
$ids = ['section' => [], 'nested' => [], 'regular' => [], 'draft' => [], 'private' => [],
        'pending' => [], 'future' => [], 'protected' => [], 'large' => [], 'gallery' => [],
        'dst' => [], 'tie' => [], 'blocks' => []];

function make_page($args, $what) {
    $defaults = ['post_type' => 'page', 'post_status' => 'publish', 'post_author' => 1,
                 'comment_status' => 'closed', 'ping_status' => 'closed'];
    return bulletin_check(wp_insert_post(array_merge($defaults, $args), true), $what);
}

/** Spread, unique GMT timestamps between 2019-01-01 and 2024-12-31, shuffled. */
function spread_gmt_times($n) {
    $start = strtotime('2019-01-01 00:00:00 UTC');
    $end = strtotime('2024-12-31 00:00:00 UTC');
    $step = intdiv($end - $start, max(1, $n));
    $out = [];
    for ($i = 0; $i < $n; $i++) {
        $ts = $start + $i * $step + mt_rand(0, max(0, $step - 1));
        $out[] = gmdate('Y-m-d H:i:s', $ts);
    }
    shuffle($out);
    return $out;
}

function stamp_for($gmt) {
    return [get_date_from_gmt($gmt), $gmt];
}

// ---------------------------------------------------------------- pages
$n_regular = $N_PAGES - $fixed - $N_TIE;
$times = spread_gmt_times($N_PAGES);
$next_time = function () use (&$times) { return array_pop($times); };

// Sections (top-level parents) and the pages nested under them.
for ($s = 1; $s <= N_SECTIONS; $s++) {
    $id = make_page(['post_title' => "Seed section $s — Rubrik $s", 'post_content' => paragraph_html($s),
                     'menu_order' => $s], 'section');
    $ids['section'][] = $id;
    $modified[$id] = stamp_for($next_time());
}

for ($i = 1; $i <= $n_regular; $i++) {
    $parent = 0;
    if ($i % 3 === 0) {
        $parent = $ids['section'][$i % N_SECTIONS];
    } elseif ($i % 7 === 0 && count($ids['nested']) > 0) {
        $parent = $ids['nested'][mt_rand(0, count($ids['nested']) - 1)]; // grandchildren
    }
    $blocks = ($i % 4 === 0);
    $content = $blocks
        ? "<!-- wp:paragraph -->\n" . paragraph_html($i) . "\n<!-- /wp:paragraph -->\n\n<!-- wp:paragraph -->\n" . paragraph_html($i + 1) . "\n<!-- /wp:paragraph -->"
        : words(20) . "\n\n" . words(25) . "\n\nLine with 中文 and emoji 🎉 #$i";
    $title = ($i % 5 === 0) ? "Seed page $i — Café Über 中文 🎉" : "Seed page $i";
    $id = make_page(['post_title' => $title, 'post_content' => $content, 'post_parent' => $parent,
                     'post_excerpt' => ($i % 6 === 0) ? "Excerpt é ü 中文 $i" : ''], 'regular page');
    $ids['regular'][] = $id;
    if ($parent) { $ids['nested'][] = $id; }
    if ($blocks) { $ids['blocks'][] = $id; }
    $modified[$id] = stamp_for($next_time());
}

foreach (['draft' => N_DRAFT, 'private' => N_PRIVATE, 'pending' => N_PENDING] as $status => $n) {
    for ($i = 1; $i <= $n; $i++) {
        $id = make_page(['post_title' => "Seed $status page $i", 'post_status' => $status,
                         'post_content' => paragraph_html($i)], "$status page");
        $ids[$status][] = $id;
        $modified[$id] = stamp_for($next_time());
    }
}
for ($i = 1; $i <= N_FUTURE; $i++) {
    $date = sprintf('2030-0%d-01 09:00:00', $i);
    $id = make_page(['post_title' => "Seed scheduled page $i", 'post_status' => 'future',
                     'post_date' => $date, 'post_date_gmt' => get_gmt_from_date($date),
                     'post_content' => paragraph_html($i)], 'future page');
    $ids['future'][] = $id;
    $modified[$id] = stamp_for($next_time());
}
for ($i = 1; $i <= N_PROTECTED; $i++) {
    $id = make_page(['post_title' => "Seed protected page $i", 'post_password' => 'secret',
                     'post_content' => paragraph_html($i), 'post_excerpt' => "Secret excerpt $i"],
                    'protected page');
    $ids['protected'][] = $id;
    $modified[$id] = stamp_for($next_time());
}
for ($i = 1; $i <= N_LARGE; $i++) {
    $parts = [];
    $k = 0;
    while (strlen(implode("\n", $parts)) < 50 * 1024 + $i * 7000) {
        $parts[] = paragraph_html(++$k);
    }
    $id = make_page(['post_title' => "Seed large page $i — 大きい", 'post_content' => implode("\n", $parts)],
                    'large page');
    $ids['large'][] = $id;
    $modified[$id] = stamp_for($next_time());
}
for ($i = 0; $i < N_DST; $i++) {
    $id = make_page(['post_title' => 'Seed DST page ' . ($i + 1) . ' (' . DST_GMTS[$i] . ' GMT)',
                     'post_content' => paragraph_html($i)], 'DST page');
    $ids['dst'][] = $id;
    $modified[$id] = [DST_LOCAL, DST_GMTS[$i]]; // same local time, an hour apart
}
$tie_gmt = get_gmt_from_date(TIE_LOCAL);
for ($i = 1; $i <= $N_TIE; $i++) {
    $id = make_page(['post_title' => sprintf('Tie block page %03d', $i), 'post_content' => paragraph_html($i)],
                    'tie page');
    $ids['tie'][] = $id;
    $modified[$id] = [TIE_LOCAL, $tie_gmt];
}
// Gallery pages are created last among pages; their shortcodes get ids once media exists.
for ($i = 1; $i <= N_GALLERY; $i++) {
    $id = make_page(['post_title' => "Seed gallery page $i", 'post_content' => 'placeholder'], 'gallery page');
    $ids['gallery'][] = $id;
    $modified[$id] = stamp_for($next_time());
}

// ---------------------------------------------------------------- media
$public_parents = array_merge($ids['regular'], $ids['section'], $ids['large']);
$media = ['visible' => [], 'hidden' => [], 'unattached' => [], 'hidden_parents' => []];
$media_times = spread_gmt_times($N_MEDIA);
$has_gd = function_exists('imagecreatetruecolor');
// A 1x1 PNG, used when GD is missing.
$tiny_png = base64_decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==');

for ($i = 1; $i <= $N_MEDIA; $i++) {
    $gmt = array_pop($media_times);
    [$local] = stamp_for($gmt);
    if ($i <= N_MEDIA_ON_DRAFT) {
        $parent = $ids['draft'][0];
        $kind = 'hidden';
    } elseif ($i <= N_MEDIA_ON_DRAFT + N_MEDIA_ON_PRIVATE) {
        $parent = $ids['private'][0];
        $kind = 'hidden';
    } elseif ($i <= N_MEDIA_ON_DRAFT + N_MEDIA_ON_PRIVATE + N_MEDIA_UNATTACHED) {
        $parent = 0;
        $kind = 'unattached';
    } else {
        $parent = $public_parents[$i % count($public_parents)];
        $kind = 'visible';
    }
    $upload = wp_upload_dir(substr($local, 0, 4) . '/' . substr($local, 5, 2));
    if (!empty($upload['error'])) {
        bulletin_die('wp_upload_dir: ' . $upload['error']);
    }
    $big = ($i % 20 === 0); // large enough for WordPress to generate sub-sizes
    $ext = $big ? 'jpg' : 'png';
    $file = $upload['path'] . "/seed-image-$i.$ext";
    if ($has_gd) {
        [$w, $h] = $big ? [400, 300] : [24 + $i % 16, 16 + $i % 9];
        $im = imagecreatetruecolor($w, $h);
        imagefill($im, 0, 0, imagecolorallocate($im, ($i * 37) % 256, ($i * 91) % 256, ($i * 53) % 256));
        $ok = $big ? imagejpeg($im, $file, 80) : imagepng($im, $file);
        imagedestroy($im);
        if (!$ok) { bulletin_die("could not write $file"); }
    } else {
        $ext = 'png';
        $file = $upload['path'] . "/seed-image-$i.png";
        file_put_contents($file, $tiny_png) || bulletin_die("could not write $file");
    }
    $title = ($i % 3 === 0) ? "Bild für Seite $i — 图片 🎉" : "Seed image $i";
    $id = bulletin_check(wp_insert_attachment([
        'post_mime_type' => $ext === 'jpg' ? 'image/jpeg' : 'image/png',
        'post_title' => $title,
        'post_content' => "Description $i: " . words(5),
        'post_excerpt' => ($i % 2) ? "Caption $i é" : '',
        'post_status' => 'inherit',
        'post_author' => 1,
    ], $file, $parent, true), 'wp_insert_attachment');
    $meta = wp_generate_attachment_metadata($id, $file);
    if (empty($meta)) {
        bulletin_die("wp_generate_attachment_metadata($id) returned nothing");
    }
    wp_update_attachment_metadata($id, $meta);
    update_post_meta($id, '_wp_attachment_image_alt', "Alt text $i ü");
    $media[$kind][] = $id;
    if ($kind === 'hidden') { $media['hidden_parents'][$parent] = true; }
    $modified[$id] = [$local, $gmt];
}

// Galleries reference visible media; some shortcodes stand alone, some sit between
// paragraphs, some inside a shortcode block (wpautop handles these differently).
foreach ($ids['gallery'] as $k => $id) {
    $pick = array_slice($media['visible'], ($k * 3) % max(1, count($media['visible']) - 3), 3);
    $sc = '[gallery ids="' . implode(',', $pick) . '"]';
    switch ($k % 3) {
        case 0: $content = $sc; break;
        case 1: $content = "Intro für die Galerie $k — 中文\n\n$sc\n\nOutro $k"; break;
        default: $content = "<!-- wp:shortcode -->\n$sc\n<!-- /wp:shortcode -->"; break;
    }
    bulletin_check(wp_update_post(['ID' => $id, 'post_content' => $content], true), 'gallery content');
}

// ---------------------------------------------------------------- modified stamps
foreach ($modified as $id => [$local, $gmt]) {
    // post_date must not be after the modified time; move it back a little.
    $post = get_post($id);
    if ($post->post_status !== 'future' && $post->post_date_gmt > $gmt) {
        $back = gmdate('Y-m-d H:i:s', strtotime("$gmt UTC") - 86400 * (1 + $id % 300));
        $GLOBALS['wpdb']->update($GLOBALS['wpdb']->posts,
            ['post_date' => get_date_from_gmt($back), 'post_date_gmt' => $back], ['ID' => $id]);
    }
    bulletin_set_modified($id, $local, $gmt);
}
wp_defer_term_counting(false);
wp_defer_comment_counting(false);

// ---------------------------------------------------------------- summary
global $wpdb;
$counts = [];
foreach ($wpdb->get_results("SELECT post_type, post_status, COUNT(*) n FROM $wpdb->posts GROUP BY post_type, post_status") as $r) {
    $counts[$r->post_type][$r->post_status] = (int) $r->n;
}
$protected_all = array_map('intval', $wpdb->get_col(
    "SELECT ID FROM $wpdb->posts WHERE post_type='page' AND post_status='publish' AND post_password<>'' ORDER BY ID"));
$published_pages = (int) ($counts['page']['publish'] ?? 0);
$summary = [
    'pages' => $counts['page'] ?? [],
    'pages_published' => $published_pages,
    'media' => $counts['attachment'] ?? [],
    'media_total' => array_sum($counts['attachment'] ?? []),
    'media_hidden' => count($media['hidden']),
    'media_listed' => array_sum($counts['attachment'] ?? []) - count($media['hidden']),
    'tie' => ['modified' => TIE_LOCAL, 'modified_gmt' => $tie_gmt, 'ids' => $ids['tie']],
    'dst' => array_map(fn($id) => ['id' => $id, 'modified' => $modified[$id][0], 'modified_gmt' => $modified[$id][1]], $ids['dst']),
    'ids' => [
        'sections' => $ids['section'], 'nested' => $ids['nested'], 'draft' => $ids['draft'],
        'private' => $ids['private'], 'pending' => $ids['pending'], 'future' => $ids['future'],
        'protected' => $protected_all, 'large' => $ids['large'], 'gallery' => $ids['gallery'],
        'blocks' => $ids['blocks'], 'media_hidden' => $media['hidden'],
        'media_hidden_parents' => array_keys($media['hidden_parents']), 'media_unattached' => $media['unattached'],
    ],
    'seconds' => round(microtime(true) - $t0, 2),
];
echo json_encode($summary, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES), "\n";
