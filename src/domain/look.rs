//! The look of the mails (issue 27): a logo, a brand colour, a footer in Markdown and a few
//! social links, set by an admin on the Look page and read by the shipped templates as
//! `brand.*`. Each `parse`s its input; what a field may hold is decided here.

use sha2::{Digest, Sha256};

use super::text;
use super::update::MAX_URL_CHARS;
use super::FieldErrors;

/// The colour of the shipped templates before anyone chose one.
pub const DEFAULT_COLOUR: &str = "#14406b";
/// Least contrast of white text on the brand colour (WCAG 2.1 AA, normal text).
pub const MIN_CONTRAST: f64 = 4.5;
/// Longest footer, in characters of Markdown.
pub const MAX_FOOTER_CHARS: usize = 2_000;
/// Most social links.
pub const MAX_SOCIAL_LINKS: usize = 6;
/// Longest social link label, in characters.
pub const MAX_LABEL_CHARS: usize = 40;
/// Largest logo file, in bytes.
pub const MAX_LOGO_BYTES: usize = 512 * 1024;
/// Widest and tallest logo, in pixels.
pub const MAX_LOGO_PIXELS: u32 = 4_000;

/// The form's (and the stored look's) names of the social link fields, by row.
pub const SOCIAL_FIELDS: [(&str, &str); MAX_SOCIAL_LINKS] = [
    ("social_label_1", "social_url_1"),
    ("social_label_2", "social_url_2"),
    ("social_label_3", "social_url_3"),
    ("social_label_4", "social_url_4"),
    ("social_label_5", "social_url_5"),
    ("social_label_6", "social_url_6"),
];

/// A colour `#rrggbb` (lower case) on which white text has at least [`MIN_CONTRAST`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandColour(String);

impl BrandColour {
    /// # Errors
    /// Not `#rrggbb`, or white text on it would be too faint (the ratio is named).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let hex = raw.strip_prefix('#').unwrap_or(raw);
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(
                "The brand colour is written #rrggbb: a # and six hexadecimal digits, such as #14406b."
                    .into(),
            );
        }
        let colour = Self(format!("#{}", hex.to_ascii_lowercase()));
        let ratio = colour.contrast_with_white();
        if ratio < MIN_CONTRAST {
            // Rounded down, so a refused colour never reads as 4.50:1.
            let shown = (ratio * 100.0).floor() / 100.0;
            return Err(format!(
                "White text on {} has a contrast of {shown:.2}:1; at least {MIN_CONTRAST}:1 is \
                 needed (WCAG AA) for the header and buttons to be readable. Choose a darker colour.",
                colour.0
            ));
        }
        Ok(colour)
    }

    /// A colour as it was saved (checked then).
    pub fn from_stored(colour: String) -> Self {
        Self(colour)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The contrast ratio of white on this colour, from 1 to 21 (WCAG 2.1's formula).
    pub fn contrast_with_white(&self) -> f64 {
        let channel = |i: usize| {
            let c = f64::from(u8::from_str_radix(&self.0[i..i + 2], 16).unwrap_or(0)) / 255.0;
            if c <= 0.040_45 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let luminance = 0.2126 * channel(1) + 0.7152 * channel(3) + 0.0722 * channel(5);
        1.05 / (luminance + 0.05)
    }
}

impl Default for BrandColour {
    fn default() -> Self {
        Self(DEFAULT_COLOUR.into())
    }
}

/// A named link to the organisation elsewhere: a label and an https URL.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SocialLink {
    pub label: String,
    pub url: String,
}

/// A logo as stored: its content hash (SHA-256, hex), kind and size in pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoRef {
    pub sha256: String,
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

impl LogoRef {
    /// The file name it is served under: `logo-<sha256>.<ext>`.
    pub fn file_name(&self) -> String {
        format!("logo-{}.{}", self.sha256, self.kind.extension())
    }
}

/// The settings every shipped template reads. The default is the look before anyone set one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Look {
    pub colour: BrandColour,
    /// Markdown; empty for none.
    pub footer: String,
    pub social: Vec<SocialLink>,
    pub logo: Option<LogoRef>,
}

/// One saved version of the look.
#[derive(Debug, Clone)]
pub struct LookVersion {
    pub version: i32,
    pub look: Look,
    pub saved_by: String,
    pub saved_at: chrono::DateTime<chrono::Utc>,
}

/// The Look form's text fields as received.
#[derive(Debug, Clone, Default)]
pub struct LookInput {
    pub colour: String,
    pub footer: String,
    /// (label, URL) by row, blanks included.
    pub social: Vec<(String, String)>,
}

/// The colour, footer and social links parsed (the logo is set apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookText {
    pub colour: BrandColour,
    pub footer: String,
    pub social: Vec<SocialLink>,
}

impl LookInput {
    /// # Errors
    /// A message per field refused, keyed by the form's field name.
    pub fn parse(&self) -> Result<LookText, FieldErrors> {
        let mut errors = FieldErrors::new();
        let colour = BrandColour::parse(&self.colour)
            .map_err(|e| errors.insert("colour", e))
            .ok();
        let footer = self.footer.trim().replace("\r\n", "\n");
        if footer.chars().count() > MAX_FOOTER_CHARS {
            errors.insert(
                "footer",
                format!("The footer has at most {MAX_FOOTER_CHARS} characters."),
            );
        } else if let Err(e) = text::check_text("footer", &footer) {
            errors.insert("footer", e);
        }
        if self.social.len() > MAX_SOCIAL_LINKS {
            errors.insert(
                SOCIAL_FIELDS[0].0,
                format!("At most {MAX_SOCIAL_LINKS} social links."),
            );
        }
        let mut social = Vec::new();
        for ((label, url), (label_field, url_field)) in self.social.iter().zip(SOCIAL_FIELDS) {
            let (label, url) = (label.trim(), url.trim());
            if label.is_empty() && url.is_empty() {
                continue;
            }
            match social_link(label, url) {
                Ok(link) => social.push(link),
                Err((true, e)) => {
                    errors.insert(label_field, e);
                }
                Err((false, e)) => {
                    errors.insert(url_field, e);
                }
            }
        }
        match colour {
            Some(colour) if errors.is_empty() => Ok(LookText {
                colour,
                footer,
                social,
            }),
            _ => Err(errors),
        }
    }
}

/// A social link, or why not: `(true, _)` for the label, `(false, _)` for the URL.
fn social_link(label: &str, url: &str) -> Result<SocialLink, (bool, String)> {
    if label.is_empty() {
        return Err((
            true,
            "A social link needs a label, such as Mastodon.".into(),
        ));
    }
    if label.chars().count() > MAX_LABEL_CHARS {
        return Err((
            true,
            format!("A social link's label has at most {MAX_LABEL_CHARS} characters."),
        ));
    }
    text::check_line("label", label).map_err(|e| (true, e))?;
    if url.len() > MAX_URL_CHARS {
        return Err((
            false,
            format!("A link has at most {MAX_URL_CHARS} characters."),
        ));
    }
    match url::Url::parse(url) {
        Ok(parsed) if parsed.scheme() == "https" && parsed.host_str().is_some() => Ok(SocialLink {
            label: label.to_owned(),
            url: parsed.to_string(),
        }),
        _ => Err((
            false,
            format!("The link for {label} must be a full https:// address."),
        )),
    }
}

/// The image formats a logo may be: those every mail client shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageKind {
    pub const ALL: [ImageKind; 4] = [Self::Png, Self::Jpeg, Self::Gif, Self::Webp];

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Gif => "image/gif",
            Self::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
            Self::Gif => "gif",
            Self::Webp => "webp",
        }
    }

    /// The kind whose signature `bytes` start with.
    pub fn of(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else if bytes.starts_with(b"\xff\xd8\xff") {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
            Some(Self::Gif)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(Self::Webp)
        } else {
            None
        }
    }

    /// The kind stored under `content_type`.
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.content_type() == content_type)
    }
}

/// An uploaded logo: its bytes, checked to be a PNG, JPEG, GIF or WebP image by their first
/// bytes (never by the file's name), within [`MAX_LOGO_BYTES`] and [`MAX_LOGO_PIXELS`].
#[derive(Debug, Clone)]
pub struct Logo {
    pub bytes: Vec<u8>,
    /// SHA-256 of the bytes.
    pub sha256: [u8; 32],
    pub kind: ImageKind,
    pub width: u32,
    pub height: u32,
}

impl Logo {
    /// # Errors
    /// Why the file cannot be a logo, in words for the person who chose it.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, String> {
        if bytes.is_empty() {
            return Err("Choose an image file for the logo.".into());
        }
        if bytes.len() > MAX_LOGO_BYTES {
            return Err(format!(
                "The logo is {} KiB; at most {} KiB.",
                bytes.len().div_ceil(1024),
                MAX_LOGO_BYTES / 1024
            ));
        }
        if looks_like_svg(&bytes) {
            return Err(
                "An SVG image cannot be a logo: an SVG can carry script and links, and \
                        many mail clients do not show it. Upload a PNG, JPEG, GIF or WebP image."
                    .into(),
            );
        }
        let Some(kind) = ImageKind::of(&bytes) else {
            return Err(
                "This file is not a PNG, JPEG, GIF or WebP image (read from its \
                        content, whatever its name says)."
                    .into(),
            );
        };
        let size = imagesize::blob_size(&bytes)
            .map_err(|_| "The image is damaged: its width and height cannot be read.")?;
        let (width, height) = (
            u32::try_from(size.width).unwrap_or(u32::MAX),
            u32::try_from(size.height).unwrap_or(u32::MAX),
        );
        if width == 0 || height == 0 {
            return Err("The image is damaged: it has no width or no height.".into());
        }
        if width > MAX_LOGO_PIXELS || height > MAX_LOGO_PIXELS {
            return Err(format!(
                "The logo is {width}×{height} pixels; at most {MAX_LOGO_PIXELS} each way."
            ));
        }
        let sha256 = Sha256::digest(&bytes).into();
        Ok(Self {
            bytes,
            sha256,
            kind,
            width,
            height,
        })
    }
}

/// Whether `bytes` start (after a byte order mark and white space) like an XML or SVG document.
fn looks_like_svg(bytes: &[u8]) -> bool {
    let start = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let start = &start[start
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(start.len())..];
    let head: Vec<u8> = start
        .iter()
        .take(1024)
        .map(u8::to_ascii_lowercase)
        .collect();
    head.starts_with(b"<") && head.windows(4).any(|w| w == b"<svg")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1×1 PNG.
    pub const PNG: &[u8] = &[
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f,
        0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x60,
        0x60, 0x60, 0xf8, 0x0f, 0x00, 0x01, 0x04, 0x01, 0x00, 0x5f, 0xe5, 0xc3, 0x4b, 0x00, 0x00,
        0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ];

    #[test]
    fn a_colour_is_refused_when_white_text_on_it_is_too_faint_with_the_ratio_named() {
        assert_eq!(BrandColour::parse("#14406B").unwrap().as_str(), "#14406b");
        assert_eq!(BrandColour::parse("000000").unwrap().as_str(), "#000000");
        let black = BrandColour::parse("#000000").unwrap().contrast_with_white();
        assert!((black - 21.0).abs() < 1e-9, "{black}");
        let err = BrandColour::parse("#ffcc00").unwrap_err();
        assert!(err.contains("1.51:1") && err.contains("4.5:1"), "{err}");
        // #767676 is the lightest grey with 4.5:1 on white; #777777 falls just short.
        assert!(BrandColour::parse("#767676").is_ok());
        let err = BrandColour::parse("#777777").unwrap_err();
        assert!(err.contains("4.47:1"), "{err}");
        for bad in ["", "#12345", "#1234567", "#gggggg", "red"] {
            assert!(
                BrandColour::parse(bad).unwrap_err().contains("#rrggbb"),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_look_form_names_each_field_it_refuses() {
        let input = LookInput {
            colour: "#eeeeee".into(),
            footer: "a\u{0}b".into(),
            social: vec![
                ("Mastodon".into(), "http://social.example/@us".into()),
                (String::new(), "https://x.example".into()),
                (String::new(), String::new()),
                ("Web".into(), "javascript:alert(1)".into()),
            ],
        };
        let errors = input.parse().unwrap_err();
        assert_eq!(
            errors.keys().copied().collect::<Vec<_>>(),
            [
                "colour",
                "footer",
                "social_label_2",
                "social_url_1",
                "social_url_4"
            ]
        );
        let long = LookInput {
            colour: DEFAULT_COLOUR.into(),
            footer: "x".repeat(MAX_FOOTER_CHARS + 1),
            social: vec![],
        };
        assert!(long.parse().unwrap_err()["footer"].contains("2000"));
        let good = LookInput {
            colour: " #000000 ".into(),
            footer: " Written by **us**.\r\n".into(),
            social: vec![(" Mastodon ".into(), "https://social.example/@us".into())],
        }
        .parse()
        .unwrap();
        assert_eq!(good.footer, "Written by **us**.");
        assert_eq!(good.social[0].label, "Mastodon");
    }

    #[test]
    fn a_logo_is_read_from_its_bytes_and_svg_is_refused_with_the_reason() {
        let logo = Logo::parse(PNG.to_vec()).unwrap();
        assert_eq!((logo.kind, logo.width, logo.height), (ImageKind::Png, 1, 1));
        let svg = b"\xef\xbb\xbf <?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>";
        assert!(Logo::parse(svg.to_vec()).unwrap_err().contains("SVG"));
        let text = Logo::parse(b"GIF8 is not enough".to_vec()).unwrap_err();
        assert!(text.contains("PNG, JPEG, GIF or WebP"), "{text}");
        let big = Logo::parse(vec![0; MAX_LOGO_BYTES + 1]).unwrap_err();
        assert!(big.contains("512 KiB"), "{big}");
        assert!(Logo::parse(Vec::new()).is_err());
        let named_png = Logo::parse(b"<html>not an image</html>".to_vec()).unwrap_err();
        assert!(named_png.contains("whatever its name says"), "{named_png}");
        assert!(Logo::parse(PNG[..20].to_vec()).is_err());
    }
}
