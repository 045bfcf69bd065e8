<?php
/*
 * Shared CLI bootstrap for the PHP scripts in this folder.
 *
 * Debian's /usr/share/wordpress/wp-config.php picks /etc/wordpress/config-HOST.php
 * from $_SERVER['HTTP_HOST'], which command-line PHP does not set. We fake the
 * minimal request environment of the test site (127.0.0.1:WP_PORT) so WordPress
 * loads the same config as the web server. Include this at global scope, then
 * `require_once BULLETIN_WP_LOAD;` (also at global scope: WordPress relies on
 * globals such as $wpdb being set by its files).
 */
$bulletin_port = getenv('WP_PORT') ?: '8089';
$_SERVER['HTTP_HOST'] = '127.0.0.1:' . $bulletin_port;
$_SERVER['SERVER_NAME'] = '127.0.0.1';
$_SERVER['SERVER_PORT'] = $bulletin_port;
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['REQUEST_METHOD'] = 'GET';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['REMOTE_ADDR'] = '127.0.0.1';
define('BULLETIN_WP_LOAD', rtrim(getenv('WP_ROOT') ?: '/usr/share/wordpress', '/') . '/wp-load.php');

/** Print to stderr and exit non-zero. */
function bulletin_die($msg) {
    fwrite(STDERR, basename($_SERVER['SCRIPT_NAME'] ?? 'wp') . ": ERROR: $msg\n");
    exit(1);
}

/** Unwrap a WP_Error / falsy result or die with its message. */
function bulletin_check($result, $what) {
    if (is_wp_error($result)) {
        bulletin_die("$what: " . $result->get_error_code() . ': ' . $result->get_error_message());
    }
    if ($result === false || $result === 0) {
        bulletin_die("$what failed");
    }
    return $result;
}

/**
 * Set exact post_modified/post_modified_gmt (wp_update_post always stamps "now").
 * $gmt defaults to $local converted with the site timezone.
 */
function bulletin_set_modified($post_id, $local, $gmt = null) {
    global $wpdb;
    if ($gmt === null || $gmt === '') {
        $gmt = get_gmt_from_date($local);
    }
    $n = $wpdb->update(
        $wpdb->posts,
        ['post_modified' => $local, 'post_modified_gmt' => $gmt],
        ['ID' => (int) $post_id]
    );
    if ($n === false) {
        bulletin_die("set_modified($post_id): " . $wpdb->last_error);
    }
    clean_post_cache((int) $post_id);
    return ['id' => (int) $post_id, 'modified' => $local, 'modified_gmt' => $gmt];
}
