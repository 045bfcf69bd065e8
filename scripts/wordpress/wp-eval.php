<?php
/*
 * Run an arbitrary PHP snippet inside the test WordPress (tests use this to
 * edit, create, unpublish or delete pages and to set exact modified times).
 *
 *   php wp-eval.php [FILE]        snippet from FILE, or from stdin
 *
 * The snippet runs at global scope after wp-load.php, as the admin user, with:
 *   $args                  decoded JSON from env WP_EVAL_ARGS (or [])
 *   bulletin_set_modified($id, $local, $gmt = null), bulletin_check($result, $what),
 *   bulletin_die($msg)     (see _bootstrap.php)
 * A leading "<?php" is optional. An uncaught error or exception exits 1.
 */
require __DIR__ . '/_bootstrap.php';
require_once BULLETIN_WP_LOAD;

$bulletin_code = ($argc > 1) ? file_get_contents($argv[1]) : stream_get_contents(STDIN);
if ($bulletin_code === false) {
    bulletin_die('could not read the snippet');
}
$bulletin_code = preg_replace('/^\s*<\?php\b/', '', $bulletin_code);
$args = json_decode(getenv('WP_EVAL_ARGS') ?: '[]', true);
wp_set_current_user(1);

set_exception_handler(function ($e) {
    bulletin_die(get_class($e) . ': ' . $e->getMessage() . ' at line ' . $e->getLine());
});
eval($bulletin_code);
