// Pages that are still changing (an update going out, an import running) reload themselves
// every few seconds. The reader can stop it with a checkbox (WCAG 2.2.1 and 2.2.2), and no reload
// happens while a control has the focus, so keyboard users are not thrown back to the top.
(function () {
  var place = document.getElementById('auto-refresh');
  if (!place) return;
  var seconds = Number(place.getAttribute('data-seconds')) || 2;
  var stopped = 'newsletter-auto-refresh-stopped';
  var box = document.createElement('input');
  box.type = 'checkbox';
  box.id = 'keep-reloading';
  box.checked = sessionStorage.getItem(stopped) !== '1';
  var label = document.createElement('label');
  label.appendChild(box);
  label.appendChild(document.createTextNode(' Reload this page every ' + seconds + ' seconds'));
  place.appendChild(label);
  var timer = null;
  function plan() {
    clearTimeout(timer);
    if (!box.checked) return;
    timer = setTimeout(function () {
      var busy = document.activeElement && document.activeElement !== document.body;
      if (busy) plan(); else location.reload();
    }, seconds * 1000);
  }
  box.addEventListener('change', function () {
    sessionStorage.setItem(stopped, box.checked ? '0' : '1');
    plan();
  });
  plan();
})();
