// Passkeys in the staff area: the WebAuthn calls behind the buttons marked with
// data-passkey="register" | "sign-in" | "second-factor". Each button names its two endpoints
// (data-begin, data-finish) and carries the form's CSRF token (data-csrf). The server sends
// the options with binary fields in base64url; this script turns them into bytes for the
// browser, and the browser's answer back into base64url JSON. No inline script: loaded from
// /admin/static under the admin area's CSP.
(function () {
  "use strict";

  function bytes(text) {
    var s = text.replace(/-/g, "+").replace(/_/g, "/");
    while (s.length % 4) { s += "="; }
    var bin = atob(s);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) { out[i] = bin.charCodeAt(i); }
    return out.buffer;
  }

  function text(buffer) {
    var view = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < view.length; i++) { bin += String.fromCharCode(view[i]); }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(url, fields) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Accept": "application/json" },
      body: new URLSearchParams(fields)
    }).then(function (r) {
      return r.json().catch(function () {
        return { error: "The service refused (" + r.status + "): reload the page and try again." };
      }).then(function (data) {
        if (!r.ok) { throw new Error(data.error || ("Refused (" + r.status + ").")); }
        return data;
      });
    });
  }

  function creation(o) {
    o.challenge = bytes(o.challenge);
    o.user.id = bytes(o.user.id);
    (o.excludeCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
    return { publicKey: o };
  }

  function request(o) {
    o.challenge = bytes(o.challenge);
    (o.allowCredentials || []).forEach(function (c) { c.id = bytes(c.id); });
    return { publicKey: o };
  }

  function registration(c) {
    return JSON.stringify({
      id: c.id,
      rawId: text(c.rawId),
      type: c.type,
      extensions: c.getClientExtensionResults(),
      response: {
        attestationObject: text(c.response.attestationObject),
        clientDataJSON: text(c.response.clientDataJSON),
        transports: c.response.getTransports ? c.response.getTransports() : []
      }
    });
  }

  function assertion(c) {
    return JSON.stringify({
      id: c.id,
      rawId: text(c.rawId),
      type: c.type,
      extensions: c.getClientExtensionResults(),
      response: {
        authenticatorData: text(c.response.authenticatorData),
        clientDataJSON: text(c.response.clientDataJSON),
        signature: text(c.response.signature),
        userHandle: c.response.userHandle ? text(c.response.userHandle) : null
      }
    });
  }

  function say(message) {
    var status = document.getElementById("passkey-status");
    if (status) { status.textContent = message; }
  }

  function run(button) {
    var kind = button.getAttribute("data-passkey");
    var csrf = button.getAttribute("data-csrf");
    var fields = { csrf_token: csrf };
    if (kind === "register") {
      var name = document.getElementById("passkey-name");
      if (!name || !name.value.trim()) {
        say("Give the passkey a name first (for example \"Work laptop\").");
        if (name) { name.focus(); }
        return;
      }
      fields.name = name.value;
    }
    if (!window.PublicKeyCredential) {
      say("This browser cannot use passkeys.");
      return;
    }
    button.disabled = true;
    say("Waiting for your passkey…");
    post(button.getAttribute("data-begin"), { csrf_token: csrf })
      .then(function (begun) {
        var ask = kind === "register"
          ? navigator.credentials.create(creation(begun.options))
          : navigator.credentials.get(request(begun.options));
        return ask.then(function (credential) {
          fields.ceremony = begun.ceremony;
          fields.credential = kind === "register" ? registration(credential) : assertion(credential);
          return post(button.getAttribute("data-finish"), fields);
        });
      })
      .then(function (done) {
        say("Done.");
        window.location.assign(done.redirect);
      })
      .catch(function (e) {
        button.disabled = false;
        say(e && e.name === "NotAllowedError"
          ? "The passkey was not used (cancelled or timed out). Try again."
          : (e && e.message) || "The passkey did not work. Try again.");
      });
  }

  document.querySelectorAll("button[data-passkey]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { run(button); });
  });
}());
