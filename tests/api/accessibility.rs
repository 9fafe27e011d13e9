//! The public pages' accessibility items that axe cannot judge, each checked by hand in headless
//! Chromium: one focus style with enough contrast on every control, descriptions tied to their
//! controls, the preferences page's refused form (summary, focus, fields tied to their errors,
//! what was sent kept), a long address on a phone, and a way back from "Delete your data?".

use fantoccini::{Client, Locator};
use newsletter::domain::subscriber_link::{sign, LinkPurpose};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::browser::{contrast, Driver};
use crate::helpers::{spawn_app, TestApp, SECRET_KEY};

/// The path of `purpose`'s link for a seeded subscriber (link version 1).
fn link(purpose: LinkPurpose, id: Uuid) -> String {
    let prefix = match purpose {
        LinkPurpose::Manage => "manage",
        LinkPurpose::Unsubscribe => "unsubscribe",
        LinkPurpose::Activity => panic!("an activity token opens no page"),
    };
    format!(
        "/{prefix}/{}",
        sign(SECRET_KEY.as_bytes(), purpose, id, 1).as_str()
    )
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn js(browser: &Client, script: &str) -> Value {
    browser.execute(script, vec![]).await.unwrap()
}

/// Focuses every visible control of the page in turn (links, buttons, fields, checkboxes,
/// selects) and reads its outline and the background around it.
pub const FOCUS_STYLES: &str = "
    const controls = [...document.querySelectorAll(
        'a[href], button, input:not([type=hidden]), select, textarea, summary')]
      .filter(e => e.offsetParent !== null && e.tabIndex >= 0 && !e.closest('[aria-hidden=true]'));
    return controls.map(e => {
      e.focus();
      const s = getComputedStyle(e);
      let around = 'rgb(255, 255, 255)';
      for (let p = e.parentElement; p; p = p.parentElement) {
        const c = getComputedStyle(p).backgroundColor;
        if (c !== 'transparent' && !c.startsWith('rgba(0, 0, 0, 0')) { around = c; break; }
      }
      return {control: e.outerHTML.slice(0, 80), kind: e.type || e.tagName.toLowerCase(),
              focused: document.activeElement === e, around,
              style: [s.outlineStyle, s.outlineWidth, s.outlineColor, s.outlineOffset].join(' '),
              color: s.outlineColor, width: parseFloat(s.outlineWidth)};
    });";

/// [`FOCUS_STYLES`] on the page shown, each control marked with `state`.
pub async fn focus_styles(browser: &Client, state: &str) -> Vec<Value> {
    let mut controls = js(browser, FOCUS_STYLES).await;
    let controls = controls.as_array_mut().unwrap();
    for control in controls.iter_mut() {
        control["state"] = json!(state);
    }
    std::mem::take(controls)
}

#[tokio::test]
async fn every_control_of_every_public_page_shows_one_focus_style_with_3_to_1_contrast() {
    let app = spawn_app().await;
    let people = app.seed_confirmed(1, "example.org").await;
    let driver = Driver::start();
    let browser = driver.connect().await;

    let mut seen: Vec<Value> = Vec::new();
    browser.goto(&app.url("/")).await.unwrap();
    seen.extend(focus_styles(&browser, "sign-up").await);
    let manage = link(LinkPurpose::Manage, people[0].0);
    browser.goto(&app.url(&manage)).await.unwrap();
    seen.extend(focus_styles(&browser, "preferences").await);
    click(&browser, "#erase").await;
    browser
        .wait()
        .for_element(Locator::Css("#keep"))
        .await
        .unwrap();
    seen.extend(focus_styles(&browser, "delete your data?").await);
    let unsubscribe = link(LinkPurpose::Unsubscribe, people[0].0);
    browser.goto(&app.url(&unsubscribe)).await.unwrap();
    seen.extend(focus_styles(&browser, "unsubscribe").await);
    browser.goto(&app.url("/no-such-page")).await.unwrap();
    seen.extend(focus_styles(&browser, "not found").await);
    browser.close().await.unwrap();

    let kinds: std::collections::BTreeSet<&str> =
        seen.iter().map(|c| c["kind"].as_str().unwrap()).collect();

    for kind in ["email", "text", "checkbox", "select-one", "submit", "a"] {
        assert!(kinds.contains(kind), "no {kind} control checked: {kinds:?}");
    }
    let first = &seen[0];
    for control in &seen {
        assert_eq!(control["focused"], true, "{control}");
        assert_eq!(
            control["style"], first["style"],
            "one focus style everywhere: {control} differs from {first}"
        );
        assert!(
            control["width"].as_f64().unwrap() >= 2.0
                && !control["style"].as_str().unwrap().starts_with("none"),
            "{control}"
        );
        let ring = contrast(
            control["color"].as_str().unwrap(),
            control["around"].as_str().unwrap(),
        );
        assert!(
            ring >= 3.0,
            "focus ring {ring:.2}:1 against what surrounds it: {control}"
        );
    }
}

#[tokio::test]
async fn list_descriptions_and_the_consent_text_describe_their_controls() {
    let app = spawn_app().await;
    sqlx::query(
        "UPDATE lists SET description = 'Weekly, from Washington.' WHERE slug = 'us-icc-updates'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let driver = Driver::start();
    let browser = driver.connect().await;
    browser.goto(&app.url("/")).await.unwrap();

    let described = js(
        &browser,
        "return [...document.querySelectorAll('[aria-describedby]')].map(e => ({
           control: e.getAttribute('name') || e.type,
           targets: e.getAttribute('aria-describedby').split(/\\s+/)
             .map(id => document.getElementById(id) ? document.getElementById(id).textContent.trim() : null)}));",
    )
    .await;
    browser.close().await.unwrap();
    let described = described.as_array().unwrap();
    let of = |control: &str| {
        described
            .iter()
            .find(|d| d["control"] == control)
            .unwrap_or_else(|| panic!("no {control} with aria-describedby: {described:?}"))
            ["targets"]
            .clone()
    };
    assert_eq!(of("lists"), json!(["Weekly, from Washington."]));
    assert_eq!(
        of("submit"),
        json!([app.settings.signup.consent_text.trim()]),
        "the button is described by the consent text"
    );
    for d in described {
        assert!(
            d["targets"]
                .as_array()
                .unwrap()
                .iter()
                .all(Value::is_string),
            "an aria-describedby names a missing id: {d}"
        );
    }
}

/// The manage page's form after a refused save, as the browser shows it.
const REFUSED: &str = "
    const f = document.activeElement;
    const name = document.getElementById('name');
    const described = id => {
      const e = document.getElementById(id);
      const target = e.getAttribute('aria-describedby');
      return {invalid: e.getAttribute('aria-invalid'),
              says: target && document.getElementById(target) ? document.getElementById(target).textContent : null,
              border: getComputedStyle(e).borderTopColor,
              width: parseFloat(getComputedStyle(e).borderTopWidth)};
    };
    return {title: document.title, focused: f.id, name_value: name.value,
            autocomplete: name.getAttribute('autocomplete'),
            links: [...document.querySelectorAll('#form-errors a')].map(a => a.getAttribute('href')),
            linked: [...document.querySelectorAll('#form-errors a')]
              .every(a => document.querySelector(a.getAttribute('href')) !== null),
            name: described('name'), state: described('state')};";

#[tokio::test]
async fn a_refused_preferences_form_sums_up_its_errors_focuses_the_first_and_keeps_what_was_sent() {
    let app = spawn_app().await;
    let people = app.seed_confirmed(1, "example.org").await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    let manage = app.url(&link(LinkPurpose::Manage, people[0].0));
    browser.goto(&manage).await.unwrap();
    let before = js(&browser, REFUSED).await;
    assert_eq!(before["autocomplete"], "name");

    // A name longer than the field allows and a state that is not one: what a tampered or an
    // old form could send.
    let long = "Z".repeat(150);
    js(
        &browser,
        "document.getElementById('name').removeAttribute('maxlength');
         const o = document.createElement('option'); o.value = 'XX'; o.text = 'XX';
         document.getElementById('state').add(o);
         document.getElementById('state').value = 'XX';",
    )
    .await;
    let name = browser.find(Locator::Css("#name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys(&long).await.unwrap();
    click(&browser, "#save").await;
    browser
        .wait()
        .for_element(Locator::Css("#form-errors"))
        .await
        .unwrap();
    let after = js(&browser, REFUSED).await;
    let axe = crate::axe::violations(&browser, &crate::axe::axe_source()).await;
    assert!(axe.is_empty(), "WCAG 2.1 AA violations: {axe:?}");

    assert!(
        after["title"].as_str().unwrap().starts_with("Error: "),
        "{after}"
    );
    assert_eq!(after["focused"], "name", "the first invalid field: {after}");
    assert_eq!(after["links"], json!(["#name", "#state"]), "{after}");
    assert_eq!(after["linked"], true, "{after}");
    assert_eq!(after["name_value"], long.as_str(), "the name as sent");
    for field in ["name", "state"] {
        let f = &after[field];
        assert_eq!(f["invalid"], "true", "{field}: {after}");
        assert!(
            f["says"].as_str().is_some_and(|s| !s.is_empty()),
            "{field}'s error tied to it: {after}"
        );
        assert_ne!(
            (&f["border"], &f["width"]),
            (&before[field]["border"], &before[field]["width"]),
            "{field} in error has its own border: {after}"
        );
        assert!(
            contrast(f["border"].as_str().unwrap(), "rgb(255, 255, 255)") >= 3.0,
            "{field}: {after}"
        );
    }

    // Only the state wrong: the state has the focus.
    js(
        &browser,
        "const o = document.createElement('option'); o.value = 'XX'; o.text = 'XX';
         document.getElementById('state').add(o);
         document.getElementById('state').value = 'XX';",
    )
    .await;
    let name = browser.find(Locator::Css("#name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("Dana").await.unwrap();
    click(&browser, "#save").await;
    browser
        .wait()
        .for_element(Locator::XPath("//input[@id='name'][@value='Dana']"))
        .await
        .unwrap();
    let only_state = js(&browser, REFUSED).await;
    assert_eq!(only_state["focused"], "state", "{only_state}");
    assert_eq!(only_state["links"], json!(["#state"]), "{only_state}");
    browser.close().await.unwrap();
}

async fn with_address(app: &TestApp, email: &str) -> Uuid {
    let id = app.seed_confirmed(1, "example.org").await[0].0;
    sqlx::query("UPDATE subscribers SET email = $1, email_normalized = $1 WHERE id = $2")
        .bind(email)
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn a_64_character_address_wraps_on_a_375_pixel_phone() {
    let app = spawn_app().await;
    let email = format!("{}@example.org", "a".repeat(52));
    assert_eq!(email.len(), 64);
    let id = with_address(&app, &email).await;
    let driver = Driver::start();
    let browser = driver.connect_phone().await;
    browser
        .goto(&app.url(&link(LinkPurpose::Manage, id)))
        .await
        .unwrap();
    let seen = js(
        &browser,
        "return {width: innerWidth, scroll: document.documentElement.scrollWidth,
                 address: document.querySelector('.address').textContent};",
    )
    .await;
    browser.close().await.unwrap();
    assert_eq!(seen["width"], 375, "{seen}");
    assert!(
        seen["scroll"].as_i64().unwrap() <= 375,
        "the page overflows: {seen}"
    );
    assert!(seen["address"].as_str().unwrap().contains(&email), "{seen}");
}

#[tokio::test]
async fn delete_your_data_has_a_way_back_that_keeps_everything() {
    let app = spawn_app().await;
    let people = app.seed_confirmed(1, "example.org").await;
    let driver = Driver::start();
    let browser = driver.connect().await;
    let manage = app.url(&link(LinkPurpose::Manage, people[0].0));
    browser.goto(&manage).await.unwrap();
    click(&browser, "#erase").await;
    browser
        .wait()
        .for_element(Locator::XPath("//h1[text()='Delete your data?']"))
        .await
        .unwrap();

    click(&browser, "#keep").await;
    browser
        .wait()
        .for_element(Locator::XPath("//h1[text()='Your preferences']"))
        .await
        .unwrap();
    assert_eq!(browser.current_url().await.unwrap().as_str(), manage);
    browser.close().await.unwrap();
    assert_eq!(
        app.subscriber_status(&people[0].1).await.as_deref(),
        Some("confirmed")
    );
}
