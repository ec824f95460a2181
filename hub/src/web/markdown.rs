//! A package's README.md → HTML for its page, safely. pulldown-cmark renders the Markdown
//! (headings, lists, code, tables: what READMEs use); nothing in the README can add markup
//! of its own: raw HTML is shown as escaped text, links keep only web, mail, relative and
//! in-page targets (no `javascript:`), and images become links, so the page never loads
//! third-party content. That is simpler to trust than sanitising HTML after the fact, and
//! more readable than preformatted text.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag, TagEnd};

pub fn render(markdown: &str) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    let events = Parser::new_ext(markdown, options).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: safe_url(dest_url),
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// `url` when it is a web, mail, relative or fragment link; `#` otherwise.
fn safe_url(url: CowStr<'_>) -> CowStr<'_> {
    let lower = url.trim().to_ascii_lowercase();
    let scheme_end = lower.find(':');
    let path_start = lower.find(['/', '?', '#']).unwrap_or(lower.len());
    let relative = scheme_end.is_none_or(|colon| colon > path_start);
    let allowed = ["http://", "https://", "mailto:"];
    if relative || allowed.iter().any(|p| lower.starts_with(p)) {
        url
    } else {
        CowStr::Borrowed("#")
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn markdown_renders_and_nothing_in_it_can_run() {
        let html = render("# Snoop\n\nTraces `openat`.\n\n- one\n- two\n\n```\nsudo run\n```\n");
        assert!(html.contains("<h1>Snoop</h1>"), "{html}");
        assert!(html.contains("<code>openat</code>"), "{html}");
        assert!(html.contains("<li>one</li>"), "{html}");
        assert!(
            html.contains("<pre><code>sudo run\n</code></pre>"),
            "{html}"
        );

        let html = render(
            "<script>alert(1)</script>\n\nhi <img src=x onerror=alert(2)> \
             [a](javascript:alert(3)) [b](JavaScript:alert(4)) [c](https://example.com/x) \
             [d](docs/usage.md) ![logo](https://tracker.example/p.png)",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.to_ascii_lowercase().contains("javascript:"), "{html}");
        assert!(
            html.contains(r#"<a href="https://example.com/x">c</a>"#),
            "{html}"
        );
        assert!(html.contains(r#"<a href="docs/usage.md">d</a>"#), "{html}");
        assert!(
            html.contains(r#"<a href="https://tracker.example/p.png">logo</a>"#),
            "{html}"
        );
    }
}
