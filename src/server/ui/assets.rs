//! The web app's static files, embedded in the binary (`include_bytes!`) and served at
//! content-hashed URLs (`/ui/assets/ui.3f9a0c1b.js`) with `Cache-Control: immutable`: a new
//! build changes the URL, never the bytes behind one. No crate: five small files need a table,
//! a hash and one route (the research measured `rust-embed`/`memory-serve` solving problems
//! latch does not have).
//!
//! The ES modules import one another by plain relative names (`./seal.js`), which is what
//! Node's test runner loads from the source tree; on the way in, each import of another asset
//! is rewritten to that asset's hashed name, in dependency order, so the hash of a module covers
//! what it imports.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// The files: name, content type, bytes. Modules come after what they import.
const FILES: [(&str, &str, &[u8]); 6] = [
    (
        "hpke-core-1.9.0.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/hpke-core-1.9.0.js"),
    ),
    (
        "seal.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/seal.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/ui.js"),
    ),
    (
        "htmx-2.0.11.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/htmx-2.0.11.min.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/app.css"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_bytes!("assets/favicon.svg"),
    ),
];

/// One served file.
struct Asset {
    name: &'static str,
    hashed: String,
    content_type: &'static str,
    bytes: Vec<u8>,
}

fn all() -> &'static [Asset] {
    static ASSETS: OnceLock<Vec<Asset>> = OnceLock::new();
    ASSETS.get_or_init(|| {
        let mut done: Vec<Asset> = Vec::with_capacity(FILES.len());
        for (name, content_type, bytes) in FILES {
            let mut bytes = bytes.to_vec();
            if std::path::Path::new(name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("js"))
            {
                for earlier in &done {
                    bytes = replace(
                        &bytes,
                        format!("\"./{}\"", earlier.name).as_bytes(),
                        format!("\"./{}\"", earlier.hashed).as_bytes(),
                    );
                }
            }
            let digest = Sha256::digest(&bytes);
            let short = hex(&digest[..4]);
            let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
            done.push(Asset {
                name,
                hashed: format!("{stem}.{short}.{ext}"),
                content_type,
                bytes,
            });
        }
        done
    })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// The URL of asset `name` (one of [`FILES`]).
///
/// # Panics
/// For a name not in [`FILES`]: a bug caught by the first test that renders the page.
#[must_use]
pub(super) fn url(name: &str) -> String {
    let asset = all()
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no asset {name}"));
    format!("/ui/assets/{}", asset.hashed)
}

/// `GET /ui/assets/{file}`: a hashed name, for ever; anything else 404.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    match all().iter().find(|a| a.hashed == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            asset.bytes.clone(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vendored files are exactly what their headers say was built.
    #[test]
    fn vendored_files_are_pinned() {
        let pinned = [
            (
                "hpke-core-1.9.0.js",
                "6d5c1567f42f4b56fa3e67cb4b8a3f1103c05b30fe655042830224d703dcc863",
            ),
            (
                "htmx-2.0.11.min.js",
                "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717",
            ),
        ];
        for (name, want) in pinned {
            let (_, _, bytes) = FILES.iter().find(|f| f.0 == name).expect("listed");
            let got = hex(&Sha256::digest(bytes));
            assert_eq!(got, want, "{name} changed");
        }
    }

    #[test]
    fn modules_import_each_other_by_hashed_name() {
        let ui = all().iter().find(|a| a.name == "ui.js").expect("ui");
        let text = String::from_utf8_lossy(&ui.bytes);
        let seal = url("seal.js");
        let seal_file = seal.rsplit('/').next().expect("file");
        assert!(text.contains(&format!("\"./{seal_file}\"")), "{seal_file}");
        assert!(!text.contains("\"./seal.js\""));
        let sealing = all().iter().find(|a| a.name == "seal.js").expect("seal");
        assert!(String::from_utf8_lossy(&sealing.bytes).contains(&url("hpke-core-1.9.0.js")[11..]));
    }
}
