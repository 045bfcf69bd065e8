<?php
/*
 * Router for PHP's built-in web server (`php -S ... router.php`), standing in for
 * Apache's mod_rewrite: real files under the WordPress root are served as-is,
 * /wp-content/... static files come from the per-run content dir (uploads), and
 * everything else (/wp-json/..., pretty permalinks) goes to index.php.
 */
$path = rawurldecode(parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH) ?? '/');
$docroot = rtrim($_SERVER['DOCUMENT_ROOT'], '/');

$content_dir = getenv('BULLETIN_WP_CONTENT_DIR');
if ($content_dir && str_starts_with($path, '/wp-content/') && !str_ends_with($path, '.php')) {
    $base = realpath($content_dir);
    $file = realpath($content_dir . substr($path, strlen('/wp-content')));
    if ($base && $file && str_starts_with($file, $base . '/') && is_file($file)) {
        $types = ['png' => 'image/png', 'jpg' => 'image/jpeg', 'jpeg' => 'image/jpeg',
                  'gif' => 'image/gif', 'webp' => 'image/webp', 'css' => 'text/css',
                  'js' => 'application/javascript', 'txt' => 'text/plain'];
        $ext = strtolower(pathinfo($file, PATHINFO_EXTENSION));
        header('Content-Type: ' . ($types[$ext] ?? 'application/octet-stream'));
        header('Content-Length: ' . filesize($file));
        readfile($file);
        return true;
    }
}

if ($path !== '/' && is_file($docroot . $path)) {
    return false; // let the built-in server serve (or execute) the real file
}

$_SERVER['SCRIPT_NAME'] = '/index.php';
$_SERVER['PHP_SELF'] = '/index.php';
$_SERVER['SCRIPT_FILENAME'] = $docroot . '/index.php';
chdir($docroot);
require $docroot . '/index.php';
