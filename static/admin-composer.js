// The composer's news items: move an item up or down, remove it, add another slot, all on the
// page. Each slot is a <select name="news_item_ids">; the form sends them in page order, so a
// move swaps two selects' choices. Without this script the selects still work as they are.
(function () {
  var list = document.getElementById('item-slots');
  if (!list) return;
  function slots() { return Array.prototype.slice.call(list.querySelectorAll('.item-slot')); }
  function say(text) {
    var status = document.getElementById('items-status');
    if (status) status.textContent = text;
  }
  function renumber() {
    slots().forEach(function (slot, i) {
      var n = i + 1;
      slot.querySelector('label').textContent = 'Item ' + n;
      slot.querySelector('select').id = 'item-' + n;
      slot.querySelector('label').htmlFor = 'item-' + n;
      slot.querySelectorAll('button').forEach(function (b) {
        b.setAttribute('aria-label', b.getAttribute('data-verb') + ' item ' + n);
      });
    });
  }
  function swap(a, b) {
    var sa = a.querySelector('select'), sb = b.querySelector('select');
    var v = sa.value; sa.value = sb.value; sb.value = v;
  }
  function button(slot, verb, text, act) {
    var b = document.createElement('button');
    b.type = 'button';
    b.className = 'small';
    b.textContent = text;
    b.setAttribute('data-verb', verb);
    b.addEventListener('click', function () { act(slot); renumber(); });
    slot.appendChild(b);
  }
  function equip(slot) {
    button(slot, 'Move up', 'Up', function (s) {
      var all = slots(), i = all.indexOf(s);
      if (i > 0) { swap(all[i - 1], s); say('Item ' + (i + 1) + ' moved up.'); all[i - 1].querySelector('select').focus(); }
    });
    button(slot, 'Move down', 'Down', function (s) {
      var all = slots(), i = all.indexOf(s);
      if (i < all.length - 1) { swap(s, all[i + 1]); say('Item ' + (i + 1) + ' moved down.'); all[i + 1].querySelector('select').focus(); }
    });
    button(slot, 'Remove', 'Remove', function (s) {
      var all = slots(), i = all.indexOf(s);
      // Later items move up one place; the last slot becomes empty.
      for (var j = i; j < all.length - 1; j++) swap(all[j], all[j + 1]);
      all[all.length - 1].querySelector('select').value = '';
      say('Item ' + (i + 1) + ' removed.');
    });
  }
  slots().forEach(equip);
  var add = document.createElement('button');
  add.type = 'button';
  add.id = 'add-item';
  add.textContent = 'Add another item';
  add.addEventListener('click', function () {
    var all = slots(), last = all[all.length - 1];
    var slot = last.cloneNode(true);
    slot.querySelectorAll('button').forEach(function (b) { b.remove(); });
    slot.querySelector('select').value = '';
    list.appendChild(slot);
    equip(slot);
    renumber();
    slot.querySelector('select').focus();
    say('Item ' + (all.length + 1) + ' added.');
  });
  list.parentNode.insertBefore(add, list.nextSibling);
  renumber();
})();
