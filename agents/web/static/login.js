// Sign-in from a login link (/login#token=...): the token sits in the fragment, which the browser
// never sends to a server; it is removed from the address bar and history at once, posted in an
// Authorization header, and comes back as an HttpOnly, SameSite=Strict session cookie.
(function () {
  "use strict";
  const status = document.getElementById("login-status");
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  history.replaceState(null, "", location.pathname);
  if (!token) {
    status.textContent = "No token in this link: ask for a new login link (sharebus auth token).";
    return;
  }
  fetch("/login", { method: "POST", headers: { Authorization: "Bearer " + token }, cache: "no-store" })
    .then(async (r) => {
      if (r.ok) { location.replace("/dashboard"); return; }
      const body = await r.json().catch(() => ({}));
      status.textContent = "Sign-in refused: " + (body.error || r.status);
    })
    .catch(() => { status.textContent = "Sign-in failed: the server did not answer."; });
})();
