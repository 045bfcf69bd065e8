<?php
/*
 * Install the test site through WordPress's own API (wp-cli is not available):
 * wp_install(), pretty permalinks so /wp-json/ routes work, and the site timezone
 * America/New_York (the pipeline's incremental cursor is site-local time).
 * Run by start.sh against an empty database.
 */
require __DIR__ . '/_bootstrap.php';
define('WP_INSTALLING', true);
require_once BULLETIN_WP_LOAD;
// wp_install() mails the admin; there is no MTA here. The function is pluggable
// (defined only if missing), so stub it before loading upgrade.php.
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password) {}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';

if (is_blog_installed()) {
    bulletin_die('WordPress is already installed in this database');
}


$result = wp_install('Bulletin test site', 'admin', 'admin@example.invalid', false, '', 'bulletin-admin');
if (empty($result['user_id'])) {
    bulletin_die('wp_install did not create the admin user');
}

update_option('siteurl', WP_SITEURL);
update_option('home', WP_HOME);
update_option('timezone_string', 'America/New_York');
update_option('gmt_offset', '');
update_option('permalink_structure', '/%postname%/');
flush_rewrite_rules(false); // soft: no .htaccess under /usr/share/wordpress

echo json_encode([
    'installed' => is_blog_installed(),
    'version' => $GLOBALS['wp_version'],
    'home' => get_option('home'),
    'timezone' => wp_timezone_string(),
    'permalink_structure' => get_option('permalink_structure'),
]), "\n";
