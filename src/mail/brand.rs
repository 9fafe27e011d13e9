//! The look of the mails as template data: what every template finds under `brand` (the logo's
//! absolute URL and the size to show it at, the colour, the footer as HTML and as text, the
//! social links), made once per set of templates (`MailTemplates`), so every mail of a set
//! carries the same look.

use serde::Serialize;

use super::markdown;
use crate::config::BaseUrl;
use crate::domain::look::SocialLink;
use crate::domain::Look;

/// Widest and tallest a logo is shown, in CSS pixels (a larger one is scaled down).
const LOGO_BOX: (u32, u32) = (240, 64);

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Brand {
    /// The organisation's name (the logo's alternative text).
    pub name: String,
    /// `#rrggbb`, on which white text has at least 4.5:1.
    pub colour: String,
    /// The logo's public URL (`/brand/logo-<sha256>.<ext>` under `server.base_url`); none
    /// without a logo.
    pub logo_url: Option<String>,
    pub logo_width: u32,
    pub logo_height: u32,
    /// The footer's Markdown as safe HTML (raw HTML shown as text, only http(s) and mailto
    /// links, each in the brand colour); empty for none.
    pub footer_html: String,
    /// The footer's Markdown as plain text; empty for none.
    pub footer_text: String,
    pub social: Vec<SocialLink>,
}

impl Brand {
    pub fn new(look: &Look, name: &str, base_url: &BaseUrl) -> Self {
        let colour = look.colour.as_str().to_owned();
        let (logo_width, logo_height) = look
            .logo
            .as_ref()
            .map_or((0, 0), |logo| shown_size(logo.width, logo.height));
        let footer_html = if look.footer.is_empty() {
            String::new()
        } else {
            // Every `<a href` is pulldown-cmark's own: raw HTML became escaped text.
            markdown::to_safe_html(&look.footer)
                .replace("<a href=", &format!("<a style=\"color: {colour};\" href="))
        };
        Self {
            name: name.to_owned(),
            logo_url: look
                .logo
                .as_ref()
                .map(|logo| base_url.join(&format!("/brand/{}", logo.file_name()))),
            logo_width,
            logo_height,
            footer_html,
            footer_text: markdown::to_text(&look.footer),
            social: look.social.clone(),
            colour,
        }
    }

    /// The look before anyone set one, for a set that sends nothing (names only).
    pub(super) fn plain() -> Self {
        Self {
            name: String::new(),
            colour: crate::domain::look::DEFAULT_COLOUR.into(),
            logo_url: None,
            logo_width: 0,
            logo_height: 0,
            footer_html: String::new(),
            footer_text: String::new(),
            social: Vec::new(),
        }
    }

    /// What a template is checked with (`MailTemplates::check`): every field filled.
    pub(super) fn sample() -> Self {
        Self {
            name: "Sample Organisation".into(),
            colour: crate::domain::look::DEFAULT_COLOUR.into(),
            logo_url: Some("https://example.org/brand/logo-sample.png".into()),
            logo_width: 120,
            logo_height: 40,
            footer_html: "<p>Sample footer</p>\n".into(),
            footer_text: "Sample footer".into(),
            social: vec![SocialLink {
                label: "Sample".into(),
                url: "https://example.org/social".into(),
            }],
        }
    }
}

/// The size a `width`×`height` logo is shown at: its own, or scaled down to fit [`LOGO_BOX`].
fn shown_size(width: u32, height: u32) -> (u32, u32) {
    let (box_w, box_h) = LOGO_BOX;
    if width <= box_w && height <= box_h {
        return (width, height);
    }
    let scale = f64::min(
        f64::from(box_w) / f64::from(width),
        f64::from(box_h) / f64::from(height),
    );
    let fit = |n: u32| ((f64::from(n) * scale).round() as u32).max(1);
    (fit(width), fit(height))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::look::{BrandColour, ImageKind};
    use crate::domain::LogoRef;

    #[test]
    fn the_brand_carries_the_logo_url_the_footer_twice_and_the_colour_in_its_links() {
        let look = Look {
            colour: BrandColour::parse("#0b5d1e").unwrap(),
            footer: "Made by [us](https://us.example) <b>bold</b>".into(),
            social: vec![],
            logo: Some(LogoRef {
                sha256: "ab".repeat(32),
                kind: ImageKind::Png,
                width: 960,
                height: 128,
            }),
        };
        let brand = Brand::new(
            &look,
            "Us",
            &BaseUrl::parse("https://news.example").unwrap(),
        );
        assert_eq!(
            brand.logo_url.as_deref(),
            Some(format!("https://news.example/brand/logo-{}.png", "ab".repeat(32)).as_str())
        );
        assert_eq!((brand.logo_width, brand.logo_height), (240, 32));
        assert!(
            brand
                .footer_html
                .contains(r#"<a style="color: #0b5d1e;" href="https://us.example">us</a>"#),
            "{}",
            brand.footer_html
        );
        assert!(
            brand.footer_html.contains("&lt;b&gt;"),
            "{}",
            brand.footer_html
        );
        assert_eq!(
            brand.footer_text,
            "Made by us <https://us.example> <b>bold</b>"
        );
        let plain = Brand::new(
            &Look::default(),
            "Us",
            &BaseUrl::parse("https://x.example").unwrap(),
        );
        assert_eq!((plain.logo_url, plain.footer_html.as_str()), (None, ""));
    }

    #[test]
    fn a_small_logo_keeps_its_size() {
        assert_eq!(shown_size(100, 50), (100, 50));
        assert_eq!(shown_size(64, 640), (6, 64));
    }
}
