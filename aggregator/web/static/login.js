// The sign-in screen: username and password → POST /api/v1/auth/login (session cookie).
import { ApiError, login, whoAmI } from "./api.js";
import { h, fill } from "./dom.js";
import { t } from "./i18n.js";

/** Show the sign-in form in root; onSignedIn(me) once the session works. */
export function mountLogin(root, onSignedIn, messageKey) {
  const user = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false" });
  const pass = h("input", { id: "login-password", name: "password", type: "password", autocomplete: "current-password", required: true });
  const message = h("p", { id: "login-message", class: "login-message", role: "alert" }, messageKey ? t(messageKey) : "");
  const submit = h("button", { type: "submit", class: "primary" }, t("login.submit"));
  const form = h("form", { class: "login-form", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, t("login.title")),
    h("label", { for: "login-username" }, t("login.username")), user,
    h("label", { for: "login-password" }, t("login.password")), pass,
    submit, message);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    submit.disabled = true;
    message.textContent = "";
    try {
      await login(user.value.trim(), pass.value);
      pass.value = "";
      onSignedIn(await whoAmI());
    } catch (err) {
      const wrong = err instanceof ApiError && [401, 422].includes(err.status);
      message.textContent = wrong ? t("login.failed") : t("login.error", { detail: err.message });
      pass.select();
    } finally {
      submit.disabled = false;
    }
  });
  fill(root, form);
  user.focus();
}
