//! What a template written by staff may cost (issue 26). Staff write mail templates and digest
//! intros, and handlebars will follow a partial that includes itself until the stack overflows
//! (which aborts the whole process), or expand partials with a fan-out of ten into hundreds of
//! megabytes. So every template is taken apart before it is used:
//!
//! - it is compiled on a thread whose stack is sized for the deepest nesting its text could
//!   hold ([`compile_stack_bytes`]; the parser recurses once per `{{#`, `(`, `[` or `{`);
//! - its partials are checked ([`check_partials`]): every partial it names is written out (no
//!   `{{> (lookup …)}}`) and is one of its own parts or an inline partial it defines, no
//!   partial reaches itself through others (the answer names the cycle), no partial block
//!   (`{{#> name}}…{{/name}}`, whose content handlebars renders into a buffer of its own), and
//!   no path of the rendering nests deeper than [`MAX_DEPTH`] blocks, sub-expressions and
//!   partials (so a rendering's stack is bounded);
//! - each body (the template's, every block's, every inline partial's) starts with a marker
//!   ([`instrument`]) whose helper reports to the output, and [`render`] writes into an output
//!   that refuses bytes past `templates.max_output_bytes` and, at every write and every marker,
//!   stops once the rendering thread has spent `templates.max_render_ms` of CPU time. Work
//!   between two checks is bounded by the template's size, whatever the data.

use std::collections::BTreeMap;
use std::time::Duration;

use handlebars::template::{HelperTemplate, Parameter, Template, TemplateElement, TemplateMapping};
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, JsonRender, Output, RenderContext,
    RenderError, Renderable,
};
use serde::Serialize;

use crate::config::TemplateSettings;

/// Deepest nesting along any path of a rendering: each block (`{{#if}}`, `{{#each}}`, an inline
/// partial's definition), sub-expression and partial counts one level.
pub const MAX_DEPTH: usize = 32;

/// The helper the marker at the start of every body calls; it writes nothing.
const MARKER: &str = "__newsletter_bound";

/// Writes and markers between two readings of the thread's CPU clock.
const CLOCK_EVERY: u32 = 64;

/// Most characters that may open a nesting level (`{`, `(`, `[`) in one text: more is refused
/// before compiling (a mail part of the shipped kind holds a few hundred).
pub const MAX_OPENERS: usize = 30_000;
/// Stack for compiling a text: this much, plus [`STACK_PER_OPENER`] per character that may
/// open a nesting level.
const BASE_STACK: usize = 1 << 20;
/// Stack the compiler may use per nesting level: handlebars turns nested sub-expressions into
/// its tree by recursion, about 2.5 KiB a level in a debug build (measured); three times that.
/// (pest, the parser under it, stops by itself where its stack runs short.)
const STACK_PER_OPENER: usize = 8 << 10;

/// How much one rendering may produce and spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderLimits {
    /// `templates.max_output_bytes`: bytes of one rendered part.
    pub max_output_bytes: usize,
    /// `templates.max_render_ms`: CPU time of the rendering thread for one part.
    pub max_render: Duration,
}

impl From<&TemplateSettings> for RenderLimits {
    fn from(settings: &TemplateSettings) -> Self {
        Self {
            max_output_bytes: settings.max_output_bytes,
            max_render: settings.max_render,
        }
    }
}

/// Why a rendering stopped.
#[derive(Debug, thiserror::Error)]
pub enum RenderFailure {
    #[error("renders more than {0} bytes (templates.max_output_bytes)")]
    TooLarge(usize),
    #[error("takes more than {} ms to render (templates.max_render_ms)", .0.as_millis())]
    TooSlow(Duration),
    #[error(transparent)]
    Template(RenderError),
}

/// Characters of `text` that may open a nesting level: the compiler recurses at most once per
/// such character, whatever the closing characters say.
fn openers(text: &str) -> usize {
    text.bytes()
        .filter(|b| matches!(b, b'{' | b'(' | b'['))
        .count()
}

/// Refuses a text with more than [`MAX_OPENERS`] characters that may open a level.
///
/// # Errors
/// Why, in words.
pub fn check_openers(text: &str) -> Result<(), String> {
    if openers(text) > MAX_OPENERS {
        return Err(format!(
            "has more than {MAX_OPENERS} of the characters {{, ( and [ (each may open a \
             level to compile)"
        ));
    }
    Ok(())
}

/// The stack a thread compiling `texts`, one after the other, needs.
pub fn compile_stack_bytes<'a>(texts: impl IntoIterator<Item = &'a str>) -> usize {
    let deepest = texts.into_iter().map(openers).max().unwrap_or(0);
    BASE_STACK.saturating_add(deepest.saturating_mul(STACK_PER_OPENER))
}

/// Runs `work` on a thread of its own with a stack of `stack_bytes`, and waits for it without
/// holding up the async runtime.
///
/// # Errors
/// The thread could not be started (its stack could not be had) or panicked.
pub async fn on_own_thread<T: Send + 'static>(
    stack_bytes: usize,
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("template-check".into())
        .stack_size(stack_bytes)
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| anyhow::anyhow!("starting a thread to check a template: {e}"))?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the thread checking a template stopped"))
}

/// What one partial definition (a part, or an inline partial) holds: the partials it names,
/// each with the nesting level it is named at, its own deepest level, and the part it is
/// written in (an index into the parts given to [`check_partials`]).
struct Definition {
    part: usize,
    calls: Vec<(String, usize)>,
    depth: usize,
}

/// The definitions of a template's parts and inline partials, by name.
struct Definitions(BTreeMap<String, Definition>);

impl Definitions {
    fn entry(&mut self, name: &str, part: usize) -> &mut Definition {
        self.0.entry(name.to_owned()).or_insert(Definition {
            part,
            calls: Vec::new(),
            depth: 0,
        })
    }

    /// Reads the elements of `template`, written in part `part` inside definition `owner` at
    /// nesting `level`.
    fn read(
        &mut self,
        template: &Template,
        owner: &str,
        part: usize,
        level: usize,
    ) -> Result<(), String> {
        self.note_depth(owner, part, level)?;
        for element in &template.elements {
            match element {
                TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
                TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                    self.note_depth(owner, part, level + helper_depth(h))?;
                }
                TemplateElement::HelperBlock(h) => {
                    self.note_depth(owner, part, level + helper_depth(h))?;
                    for body in [&h.template, &h.inverse].into_iter().flatten() {
                        self.read(body, owner, part, level + 1)?;
                    }
                }
                TemplateElement::DecoratorExpression(d) => {
                    self.note_depth(owner, part, level + params_depth(&d.params, &d.hash))?;
                }
                TemplateElement::DecoratorBlock(d) => {
                    let name = match (&d.name, d.params.as_slice()) {
                        (
                            Parameter::Name(n),
                            [Parameter::Literal(serde_json::Value::String(s))],
                        ) if n == "inline" => s.clone(),
                        (Parameter::Name(n), _) if n == "inline" => {
                            return Err("an inline partial's name must be written in quotes, \
                                        as in {{#*inline \"name\"}}"
                                .into())
                        }
                        _ => {
                            return Err(
                                "only the inline decorator ({{#*inline \"name\"}}) may be used"
                                    .into(),
                            )
                        }
                    };
                    if let Some(body) = &d.template {
                        self.read(body, &name, part, 0)?;
                    }
                }
                TemplateElement::PartialExpression(d) => {
                    let Some(name) = static_name(&d.name) else {
                        return Err("a partial's name must be written out, as in {{> name}}".into());
                    };
                    self.note_depth(owner, part, level + params_depth(&d.params, &d.hash))?;
                    self.entry(owner, part).calls.push((name, level));
                }
                TemplateElement::PartialBlock(_) => {
                    return Err("partial blocks ({{#> name}}…{{/name}}) are not supported; \
                                use {{> name}}"
                        .into())
                }
                _ => return Err("uses a construct this service does not support".into()),
            }
        }
        Ok(())
    }

    fn note_depth(&mut self, owner: &str, part: usize, depth: usize) -> Result<(), String> {
        let entry = self.entry(owner, part);
        entry.depth = entry.depth.max(depth);
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(())
    }
}

fn too_deep() -> String {
    format!("nests blocks, sub-expressions and partials more than {MAX_DEPTH} levels deep")
}

/// The name of a partial as handlebars looks it up, when it does not depend on the data.
fn static_name(p: &Parameter) -> Option<String> {
    match p {
        Parameter::Name(n) => Some(n.clone()),
        Parameter::Path(handlebars::Path::Relative((_, raw)))
        | Parameter::Path(handlebars::Path::Local((_, _, raw))) => Some(raw.clone()),
        Parameter::Literal(value) => Some(value.render()),
        _ => None,
    }
}

/// Levels of sub-expressions in a helper's name, parameters and hash.
fn helper_depth(h: &HelperTemplate) -> usize {
    param_depth(&h.name).max(params_depth(&h.params, &h.hash))
}

fn params_depth(
    params: &[Parameter],
    hash: &std::collections::HashMap<String, Parameter>,
) -> usize {
    params
        .iter()
        .chain(hash.values())
        .map(param_depth)
        .max()
        .unwrap_or(0)
}

fn param_depth(p: &Parameter) -> usize {
    match p {
        Parameter::Subexpression(sub) => match sub.as_element() {
            TemplateElement::Expression(h) | TemplateElement::HtmlExpression(h) => {
                1 + helper_depth(h)
            }
            _ => 1,
        },
        _ => 0,
    }
}

/// Checks the partials of one template whose parts are `parts` (the name each is registered
/// under, and its compiled form): see the module's documentation.
///
/// # Errors
/// The index of the part at fault, and why.
pub fn check_partials(parts: &[(&str, &Template)]) -> Result<(), (usize, String)> {
    let mut definitions = Definitions(BTreeMap::new());
    for (i, (name, template)) in parts.iter().enumerate() {
        definitions.read(template, name, i, 0).map_err(|e| (i, e))?;
    }
    let defs = &definitions.0;
    for def in defs.values() {
        if let Some((missing, _)) = def.calls.iter().find(|(n, _)| !defs.contains_key(n)) {
            return Err((
                def.part,
                format!(
                    "{{{{> {missing}}}}}: no such partial (a partial is one of this template's \
                     parts or an inline partial it defines)"
                ),
            ));
        }
    }
    let depths = depths(parts.iter().map(|(name, _)| *name), defs)?;
    match depths.iter().find(|(_, d)| **d > MAX_DEPTH) {
        Some((name, _)) => Err((defs[*name].part, too_deep())),
        None => Ok(()),
    }
}

/// The deepest nesting reached from each definition, following its partials (from the parts
/// first, in their order); an error naming the partials of a cycle, when there is one.
fn depths<'a>(
    parts: impl Iterator<Item = &'a str>,
    defs: &'a BTreeMap<String, Definition>,
) -> Result<BTreeMap<&'a str, usize>, (usize, String)> {
    let mut done: BTreeMap<&str, usize> = BTreeMap::new();
    for start in parts.chain(defs.keys().map(String::as_str)) {
        if done.contains_key(start) {
            continue;
        }
        // Depth-first, on a stack of (definition, next call to follow).
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        while let Some((name, next)) = path.last().copied() {
            let def = &defs[name];
            if let Some((callee, _)) = def.calls.get(next) {
                path.last_mut().expect("the path is not empty").1 += 1;
                if done.contains_key(callee.as_str()) {
                    continue;
                }
                if let Some(at) = path.iter().position(|(n, _)| *n == callee) {
                    let mut cycle: Vec<&str> = path[at..].iter().map(|(n, _)| *n).collect();
                    cycle.push(callee);
                    return Err((
                        defs[callee.as_str()].part,
                        format!("partials include each other: {}", cycle.join(" → ")),
                    ));
                }
                path.push((callee, 0));
            } else {
                let deepest = def
                    .calls
                    .iter()
                    .map(|(callee, level)| level + 1 + done[callee.as_str()])
                    .fold(def.depth, usize::max);
                done.insert(name, deepest);
                path.pop();
            }
        }
    }
    Ok(done)
}

/// Puts the marker at the start of `template`'s body and of every body inside it.
pub fn instrument(template: &mut Template) {
    for element in &mut template.elements {
        match element {
            TemplateElement::HelperBlock(h) => {
                for body in [&mut h.template, &mut h.inverse].into_iter().flatten() {
                    instrument(body);
                }
            }
            TemplateElement::DecoratorBlock(d) | TemplateElement::PartialBlock(d) => {
                if let Some(body) = &mut d.template {
                    instrument(body);
                }
            }
            _ => {}
        }
    }
    let (element, first_line) = marker();
    let at = template.mapping.first().unwrap_or(first_line).clone();
    template.elements.insert(0, element.clone());
    template.mapping.insert(0, at);
}

/// `{{__newsletter_bound}}` compiled once, and its place (line 1, column 1).
fn marker() -> &'static (TemplateElement, TemplateMapping) {
    static MARKER_ELEMENT: std::sync::OnceLock<(TemplateElement, TemplateMapping)> =
        std::sync::OnceLock::new();
    MARKER_ELEMENT.get_or_init(|| {
        let mut t = Template::compile(&format!("{{{{{MARKER}}}}}")).expect("the marker compiles");
        (t.elements.remove(0), t.mapping.remove(0))
    })
}

/// The marker's helper: an empty write, which is where the output reads the clock.
struct Marker;

impl HelperDef for Marker {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        out: &mut dyn Output,
    ) -> HelperResult {
        out.write("")?;
        Ok(())
    }
}

/// Registers the marker's helper in `registry`.
pub fn register_marker(registry: &mut Handlebars<'_>) {
    registry.register_helper(MARKER, Box::new(Marker));
}

/// The CPU time this thread has used (the process's monotonic time where the system has no
/// such clock).
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through the valid, exclusive pointer it gets.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc == 0 {
        Duration::new(
            u64::try_from(ts.tv_sec).unwrap_or(0),
            u32::try_from(ts.tv_nsec).unwrap_or(0),
        )
    } else {
        static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        EPOCH.get_or_init(std::time::Instant::now).elapsed()
    }
}

/// An output that refuses bytes past the limit and stops once the thread has spent its time.
struct BoundedOutput {
    text: String,
    limits: RenderLimits,
    started: Duration,
    writes: u32,
    over: Option<RenderFailure>,
}

impl Output for BoundedOutput {
    fn write(&mut self, seg: &str) -> std::io::Result<()> {
        self.writes = self.writes.wrapping_add(1);
        if self.text.len() + seg.len() > self.limits.max_output_bytes {
            self.over = Some(RenderFailure::TooLarge(self.limits.max_output_bytes));
        } else if self.writes % CLOCK_EVERY == 0
            && thread_cpu_time().saturating_sub(self.started) > self.limits.max_render
        {
            self.over = Some(RenderFailure::TooSlow(self.limits.max_render));
        }
        if self.over.is_some() {
            return Err(std::io::Error::other("over the rendering limits"));
        }
        self.text.push_str(seg);
        Ok(())
    }
}

/// Renders the template registered as `name` within `limits`.
///
/// # Errors
/// Past a limit, or handlebars' own error (a missing field in strict mode, …).
pub fn render<T: Serialize>(
    registry: &Handlebars<'_>,
    name: &str,
    data: &T,
    limits: RenderLimits,
) -> Result<String, RenderFailure> {
    let template = registry.get_template(name).ok_or_else(|| {
        RenderFailure::Template(
            handlebars::RenderErrorReason::TemplateNotFound(name.to_owned()).into(),
        )
    })?;
    let context = Context::wraps(data).map_err(RenderFailure::Template)?;
    let mut rc = RenderContext::new(template.name.as_ref());
    let mut out = BoundedOutput {
        text: String::with_capacity(8 * 1024),
        limits,
        started: thread_cpu_time(),
        writes: 0,
        over: None,
    };
    match template.render(registry, &context, &mut rc, &mut out) {
        Ok(()) => Ok(out.text),
        Err(e) => Err(out.over.take().unwrap_or(RenderFailure::Template(e))),
    }
}

/// Renders `source`, a plain-text template staff wrote outside the mail templates (a digest's
/// intro), with `data` (strict, not escaped): compiled, checked and rendered as a mail
/// template's part is, on a thread of its own.
///
/// # Errors
/// Outer: the thread could not run. Inner: why the source does not render.
pub async fn render_text(
    source: &str,
    data: serde_json::Value,
    limits: RenderLimits,
) -> anyhow::Result<Result<String, String>> {
    const NAME: &str = "intro";
    if let Err(e) = check_openers(source) {
        return Ok(Err(e));
    }
    let stack = compile_stack_bytes([source]);
    let source = source.to_owned();
    on_own_thread(stack, move || {
        let mut template = Template::compile_with_name(&source, NAME.into())
            .map_err(|e| super::explain::compile_error(&source, &e))?;
        check_partials(&[(NAME, &template)]).map_err(|(_, e)| e)?;
        instrument(&mut template);
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        register_marker(&mut registry);
        registry.register_template(NAME, template);
        render(&registry, NAME, &data, limits).map_err(|e| match e {
            RenderFailure::Template(e) => super::explain::render_error(&source, &e),
            other => other.to_string(),
        })
    })
    .await
}

/// `depth` inline partials `p0`…, each naming the next `width` times, the last holding `leaf`,
/// and a call of `p0`: `width^depth` copies of `leaf`.
#[cfg(test)]
pub(crate) fn fan_out(depth: usize, width: usize, leaf: &str) -> String {
    let mut source: String = (0..depth)
        .map(|i| {
            format!(
                "{{{{#*inline \"p{i}\"}}}}{}{{{{/inline}}}}",
                format!("{{{{> p{}}}}}", i + 1).repeat(width)
            )
        })
        .collect();
    source.push_str(&format!(
        "{{{{#*inline \"p{depth}\"}}}}{leaf}{{{{/inline}}}}{{{{> p0}}}}"
    ));
    source
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: RenderLimits = RenderLimits {
        max_output_bytes: 100_000,
        max_render: Duration::from_millis(500),
    };

    #[test]
    fn a_digest_intro_that_does_not_parse_or_render_is_explained_in_plain_words() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let render = |source: &str| {
            runtime
                .block_on(render_text(
                    source,
                    serde_json::json!({ "count": 3 }),
                    LIMITS,
                ))
                .unwrap()
                .unwrap_err()
        };
        assert_eq!(
            render("{{count}} items\n{{#if count}}"),
            "line 2, column 1: a `{{#if}}` block is opened here and never closed (close it \
             with `{{/if}}`): `{{#if count}}`"
        );
        assert_eq!(
            render("{{count}} items by {{author}}"),
            "line 1, column 20: `author` is not a field of this mail's data: \
             `{{count}} items by {{author}}`"
        );
    }

    fn compiled(source: &str) -> Template {
        Template::compile_with_name(source, "t".into()).unwrap()
    }

    fn check(source: &str) -> Result<(), String> {
        check_partials(&[("t", &compiled(source))]).map_err(|(_, e)| e)
    }

    /// A registry holding `source` as `t`, instrumented, with the marker's helper.
    fn registry(source: &str) -> Handlebars<'static> {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        register_marker(&mut registry);
        let mut template = compiled(source);
        instrument(&mut template);
        registry.register_template("t", template);
        registry
    }

    #[test]
    fn a_partial_that_reaches_itself_is_named_with_its_cycle() {
        let err = check(r#"{{#*inline "r"}}x{{> r}}{{/inline}}{{> r}}"#).unwrap_err();
        assert_eq!(err, "partials include each other: r → r");
        let err = check(
            r#"{{#*inline "a"}}{{#if x}}{{> b}}{{/if}}{{/inline}}{{#*inline "b"}}{{> a}}{{/inline}}{{> a}}"#,
        )
        .unwrap_err();
        assert_eq!(err, "partials include each other: a → b → a");
        let parts = [
            ("u/subject.txt", &compiled("{{> u/body.txt}}")),
            ("u/body.txt", &compiled("{{> u/subject.txt}}")),
        ];
        let (part, err) = check_partials(&parts).unwrap_err();
        assert_eq!(part, 0);
        assert_eq!(
            err,
            "partials include each other: u/subject.txt → u/body.txt → u/subject.txt"
        );
        assert_eq!(
            check("{{> t}}").unwrap_err(),
            "partials include each other: t → t"
        );
    }

    #[test]
    fn partials_must_be_named_known_and_plain() {
        assert!(check("{{> (lookup this \"p\")}}")
            .unwrap_err()
            .contains("written out"));
        assert!(check("{{> nowhere}}")
            .unwrap_err()
            .contains("no such partial"));
        assert!(check("{{#> t2}}x{{/t2}}")
            .unwrap_err()
            .contains("partial blocks"));
        assert!(check("{{#*inline name}}x{{/inline}}")
            .unwrap_err()
            .contains("in quotes"));
        assert!(check("{{#*other}}x{{/other}}")
            .unwrap_err()
            .contains("inline decorator"));
        assert_eq!(
            check(r#"{{#*inline "a"}}<b>{{name}}</b>{{/inline}}{{> a}}{{> a}}"#),
            Ok(())
        );
    }

    #[test]
    fn nesting_counts_blocks_sub_expressions_and_partials() {
        let blocks = |n: usize| format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n));
        assert_eq!(check(&blocks(MAX_DEPTH)), Ok(()));
        assert!(check(&blocks(MAX_DEPTH + 1))
            .unwrap_err()
            .contains("levels"));
        let sub = |n: usize| format!("{{{{a {}b{}}}}}", "(c ".repeat(n), ")".repeat(n));
        assert_eq!(check(&sub(MAX_DEPTH)), Ok(()));
        assert!(check(&sub(MAX_DEPTH + 1)).is_err());
        // A chain of partials, each inside a block: two levels a link.
        let chain = |n: usize| {
            let mut s: String = (0..n)
                .map(|i| format!("{{{{#*inline \"p{i}\"}}}}{{{{#if a}}}}{{{{> p{}}}}}{{{{/if}}}}{{{{/inline}}}}", i + 1))
                .collect();
            s.push_str(&format!(
                "{{{{#*inline \"p{n}\"}}}}x{{{{/inline}}}}{{{{> p0}}}}"
            ));
            s
        };
        assert_eq!(check(&chain(MAX_DEPTH / 3)), Ok(()));
        assert!(check(&chain(MAX_DEPTH / 2)).is_err());
    }

    #[test]
    fn a_rendering_stops_past_its_output_limit() {
        // Seven partials, each calling the next ten times: 10^7 copies of "x".
        let source = fan_out(7, 10, "x");
        assert_eq!(check(&source), Ok(()));
        let err = render(&registry(&source), "t", &(), LIMITS).unwrap_err();
        assert!(matches!(err, RenderFailure::TooLarge(_)), "{err}");
    }

    #[test]
    fn a_rendering_that_writes_nothing_still_stops_in_time() {
        // The same fan-out with nothing to write: only the markers see the clock.
        let source = fan_out(9, 10, "{{!-- nothing --}}");
        let err = render(&registry(&source), "t", &(), LIMITS).unwrap_err();
        assert!(matches!(err, RenderFailure::TooSlow(_)), "{err}");
    }

    #[test]
    fn the_marker_changes_nothing_in_the_output() {
        let source = "{{#each items}}\n  {{#if @first}}first{{else}}{{this}}{{/if}}\n{{/each}}\
                      {{#*inline \"p\"}}\n  <b>{{name}}</b>\n{{/inline}}\n  {{> p}}\nend";
        let data = serde_json::json!({ "items": [1, 2, 3], "name": "a&b" });
        let mut plain = Handlebars::new();
        plain.set_strict_mode(true);
        plain.register_template("t", compiled(source));
        assert_eq!(
            render(&registry(source), "t", &data, LIMITS).unwrap(),
            plain.render("t", &data).unwrap()
        );
    }

    #[test]
    fn a_render_error_keeps_its_position() {
        let source = "line one\n{{#if a}}{{missing}}{{/if}}";
        let data = serde_json::json!({ "a": true });
        match render(&registry(source), "t", &data, LIMITS) {
            Err(RenderFailure::Template(e)) => assert_eq!(e.line_no, Some(2), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_compiler_needs_less_stack_per_level_than_allowed() {
        // The deepest text of each kind the opener limit allows, compiled on the stack sized
        // for it (an overflow would abort the test run).
        let n = MAX_OPENERS / 2;
        let texts = [
            format!("{{{{a {}b{}}}}}", "(b ".repeat(n), ")".repeat(n)),
            format!("{}x{}", "{{#if a}}".repeat(n / 2), "{{/if}}".repeat(n / 2)),
            format!("{{{{a {}1{}}}}}", "[".repeat(n), "]".repeat(n)),
            format!("{{{{a {}", "(b ".repeat(n)),
        ];
        for text in texts {
            assert_eq!(check_openers(&text), Ok(()));
            let stack = compile_stack_bytes([text.as_str()]);
            let compiled = std::thread::Builder::new()
                .stack_size(stack)
                .spawn(move || {
                    Template::compile(&text)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                })
                .unwrap()
                .join();
            assert!(
                compiled.is_ok(),
                "the compile panicked on its {stack} bytes of stack"
            );
        }
        assert!(check_openers(&"(".repeat(MAX_OPENERS + 1)).is_err());
    }
}
