// The console's behaviour: the application menu, the overview's row selection, dialogs,
// copying the secret key, and htmx's CSRF header. No inline script anywhere: the
// Content-Security-Policy allows scripts from this file and htmx.min.js only.
"use strict";

(function () {
  const OVERVIEW_PATH = "/management/general/integrations";

  // --- htmx: CSRF header, Refresh keeps the URL's state, failures are shown -------------------

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  document.addEventListener("htmx:configRequest", function (event) {
    event.detail.headers["X-CSRF-Token"] = csrfToken();
    if (event.detail.elt && event.detail.elt.id === "refresh-button") {
      // The URL holds sort, search, page and selection, as the person left them.
      event.detail.path = window.location.pathname + window.location.search;
    }
  });

  document.addEventListener("htmx:responseError", function (event) {
    const status = event.detail.xhr ? event.detail.xhr.status : 0;
    showRequestError(
      status === 403
        ? "The server refused this request. Reload the page and try again."
        : "The server could not answer (" + status + "). Try again in a moment."
    );
  });

  document.addEventListener("htmx:sendError", function () {
    showRequestError("The server cannot be reached. Check the connection and try again.");
  });

  function showRequestError(message) {
    const banner = document.getElementById("request-error");
    if (!banner) return;
    banner.textContent = message;
    banner.hidden = false;
  }

  document.addEventListener("htmx:beforeRequest", function () {
    const banner = document.getElementById("request-error");
    if (banner) banner.hidden = true;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "integrations-region") {
      setUpGrid(true);
      announce("The list is up to date.");
    }
    localiseTimes(document);
  });

  document.addEventListener("htmx:beforeSwap", function () {
    const grid = document.getElementById("integrations-grid");
    gridHadFocus = !!grid && document.activeElement === grid;
  });

  let gridHadFocus = false;

  function announce(text) {
    const region = document.getElementById("live-region");
    if (region) region.textContent = text;
  }

  // --- the application menu: Ctrl+~ or the Menu button ---------------------------------------

  let focusBeforeMenu = null;

  function menu() {
    return document.getElementById("app-menu");
  }

  function menuIsOpen() {
    const panel = menu();
    return !!panel && !panel.hidden;
  }

  function visibleItems() {
    return Array.from(menu().querySelectorAll("[data-menu-item]")).filter(function (item) {
      let group = item.parentElement.closest('[role="group"]');
      while (group) {
        const owner = group.closest('[role="treeitem"]');
        if (owner && owner.getAttribute("aria-expanded") === "false") return false;
        group = owner ? owner.parentElement.closest('[role="group"]') : null;
      }
      return true;
    });
  }

  function focusItem(item) {
    menu()
      .querySelectorAll("[data-menu-item]")
      .forEach(function (each) {
        each.tabIndex = each === item ? 0 : -1;
      });
    item.focus();
  }

  function openMenu() {
    const panel = menu();
    const button = document.getElementById("menu-button");
    if (!panel || menuIsOpen()) return;
    focusBeforeMenu = document.activeElement;
    panel.hidden = false;
    if (button) button.setAttribute("aria-expanded", "true");
    const current = panel.querySelector('[aria-current="page"]');
    focusItem(current || visibleItems()[0]);
  }

  function closeMenu(restoreFocus) {
    const panel = menu();
    const button = document.getElementById("menu-button");
    if (!panel || !menuIsOpen()) return;
    panel.hidden = true;
    if (button) button.setAttribute("aria-expanded", "false");
    if (restoreFocus && focusBeforeMenu && document.contains(focusBeforeMenu)) {
      focusBeforeMenu.focus();
    }
    focusBeforeMenu = null;
  }

  function isMenuShortcut(event) {
    // Layouts report this key differently: US and UK give code Backquote; German and Dutch
    // give the character through key, sometimes with AltGr (which Windows reports as Ctrl+Alt).
    return (
      event.ctrlKey &&
      !event.metaKey &&
      (event.code === "Backquote" || event.key === "~" || event.key === "`")
    );
  }

  document.addEventListener("keydown", function (event) {
    if (!isMenuShortcut(event) || !menu()) return;
    event.preventDefault();
    if (menuIsOpen()) closeMenu(true);
    else openMenu();
  });

  function onMenuKey(event) {
    const items = visibleItems();
    const item = event.target.closest("[data-menu-item]");
    if (!item) return;
    const index = items.indexOf(item);
    const expandable = item.hasAttribute("aria-expanded");
    const expanded = item.getAttribute("aria-expanded") === "true";
    const parent = item.parentElement.closest('[role="treeitem"]');
    switch (event.key) {
      case "ArrowDown":
        if (index < items.length - 1) focusItem(items[index + 1]);
        break;
      case "ArrowUp":
        if (index > 0) focusItem(items[index - 1]);
        break;
      case "Home":
        focusItem(items[0]);
        break;
      case "End":
        focusItem(items[items.length - 1]);
        break;
      case "ArrowRight":
        if (expandable && !expanded) item.setAttribute("aria-expanded", "true");
        else if (expandable) focusItem(visibleItems()[index + 1]);
        break;
      case "ArrowLeft":
        if (expandable && expanded) item.setAttribute("aria-expanded", "false");
        else if (parent) focusItem(parent);
        break;
      case "Enter":
      case " ":
        if (item.tagName === "A") {
          if (event.key === " ") item.click();
          return; // Enter on a link follows it.
        }
        item.setAttribute("aria-expanded", expanded ? "false" : "true");
        break;
      case "Escape":
        closeMenu(true);
        break;
      case "Tab":
        closeMenu(false);
        return;
      default:
        return;
    }
    event.preventDefault();
  }

  function setUpMenu() {
    const panel = menu();
    const button = document.getElementById("menu-button");
    if (!panel || !button) return;
    button.addEventListener("click", function () {
      if (menuIsOpen()) closeMenu(true);
      else openMenu();
    });
    panel.addEventListener("keydown", onMenuKey);
    panel.addEventListener("click", function (event) {
      const label = event.target.closest(".menu-label");
      if (!label) return;
      const item = label.closest("[data-menu-item]");
      item.setAttribute(
        "aria-expanded",
        item.getAttribute("aria-expanded") === "true" ? "false" : "true"
      );
      focusItem(item);
    });
    document.addEventListener("mousedown", function (event) {
      if (menuIsOpen() && !panel.contains(event.target) && !button.contains(event.target)) {
        closeMenu(false);
      }
    });
  }

  // --- the overview: one selected row, kept in the URL ---------------------------------------

  function grid() {
    return document.getElementById("integrations-grid");
  }

  function rows() {
    const table = grid();
    return table ? Array.from(table.tBodies[0].rows) : [];
  }

  function selectedRow() {
    return rows().find(function (row) {
      return row.getAttribute("aria-selected") === "true";
    });
  }

  function select(row, scroll) {
    rows().forEach(function (each) {
      each.setAttribute("aria-selected", each === row ? "true" : "false");
    });
    const table = grid();
    if (table && row) table.setAttribute("aria-activedescendant", row.id);
    if (row && scroll) row.scrollIntoView({ block: "nearest" });
    rememberSelection(row ? row.dataset.id : null);
    updateToolbar();
  }

  function rememberSelection(id) {
    const url = new URL(window.location.href);
    if (id) url.searchParams.set("selected", id);
    else url.searchParams.delete("selected");
    url.searchParams.delete("saved");
    window.history.replaceState(window.history.state, "", url);
  }

  function updateToolbar() {
    const row = selectedRow();
    ["edit-button", "delete-button"].forEach(function (id) {
      const button = document.getElementById(id);
      if (button) button.disabled = !row;
    });
  }

  function openSelected() {
    const row = selectedRow();
    const edit = document.getElementById("edit-button");
    if (!row || !edit) return;
    const back = edit.dataset.back;
    window.location.assign(OVERVIEW_PATH + "/" + row.dataset.id + (back ? "?" + back : ""));
  }

  function onGridKey(event) {
    const all = rows();
    if (!all.length) return;
    const current = selectedRow();
    const index = current ? all.indexOf(current) : -1;
    let next = null;
    switch (event.key) {
      case "ArrowDown":
        next = all[Math.min(index + 1, all.length - 1)];
        break;
      case "ArrowUp":
        next = all[Math.max(index - 1, 0)];
        break;
      case "Home":
        next = all[0];
        break;
      case "End":
        next = all[all.length - 1];
        break;
      case "Enter":
        if (current) openSelected();
        event.preventDefault();
        return;
      case "Delete":
        if (current) openDeleteDialog();
        event.preventDefault();
        return;
      default:
        return;
    }
    event.preventDefault();
    select(next, true);
  }

  function setUpGrid(afterRefresh) {
    const table = grid();
    if (table) {
      table.addEventListener("click", function (event) {
        const row = event.target.closest("tbody tr");
        if (row) select(row, false);
      });
      table.addEventListener("dblclick", function (event) {
        const row = event.target.closest("tbody tr");
        if (!row) return;
        select(row, false);
        openSelected();
      });
      table.addEventListener("keydown", onGridKey);
      const row = selectedRow();
      if (row) {
        table.setAttribute("aria-activedescendant", row.id);
        if (!afterRefresh) row.scrollIntoView({ block: "nearest" });
      }
      if (afterRefresh && gridHadFocus) table.focus();
    }
    const region = document.getElementById("integrations-region");
    if (region) rememberSelection(region.dataset.selected || null);
    updateToolbar();
  }

  function openDeleteDialog() {
    const row = selectedRow();
    const dialog = document.getElementById("delete-dialog");
    if (!row || !dialog) return;
    document.getElementById("delete-name").textContent = row.dataset.name;
    document.getElementById("delete-form").action =
      OVERVIEW_PATH + "/" + row.dataset.id + "/delete";
    dialog.showModal();
  }

  function setUpToolbar() {
    const edit = document.getElementById("edit-button");
    if (edit) edit.addEventListener("click", openSelected);
    const remove = document.getElementById("delete-button");
    if (remove) remove.addEventListener("click", openDeleteDialog);
  }

  // --- dialogs, copying, times --------------------------------------------------------------

  document.addEventListener("click", function (event) {
    const opener = event.target.closest("[data-open-dialog]");
    if (opener) {
      const dialog = document.getElementById(opener.dataset.openDialog);
      if (dialog) dialog.showModal();
      return;
    }
    const copy = event.target.closest("[data-copy]");
    if (copy) copySecret(copy);
  });

  function copySecret(button) {
    const source = document.getElementById(button.dataset.copy);
    // A button may name its own status line; the secret key's Copy uses the shared one.
    const status = document.getElementById(button.dataset.copyStatus || "copy-status");
    if (!source) return;
    navigator.clipboard.writeText(source.textContent.trim()).then(
      function () {
        if (status) status.textContent = "Copied";
      },
      function () {
        if (status) status.textContent = "Could not copy; select the key and copy it yourself.";
      }
    );
  }

  function localiseTimes(root) {
    const format = new Intl.DateTimeFormat(undefined, {
      dateStyle: "medium",
      timeStyle: "short",
    });
    // Narrow tables show the date only; the title still gives the exact moment.
    const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });
    root.querySelectorAll("time[data-local-time]").forEach(function (element) {
      const moment = new Date(element.getAttribute("datetime"));
      if (!isNaN(moment.getTime())) {
        const chosen = element.hasAttribute("data-date-only") ? dateOnly : format;
        element.textContent = chosen.format(moment);
        element.title = moment.toISOString();
      }
    });
  }

  function focusErrorSummary() {
    const summary = document.getElementById("error-summary");
    if (summary) summary.focus();
  }

  function start() {
    setUpMenu();
    setUpToolbar();
    setUpGrid(false);
    localiseTimes(document);
    focusErrorSummary();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
