import { call } from "../api.js";
import { $, onSubmit } from "../ui.js";

onSubmit($("#register"), async (body) => {
  await call("register", {}, { body });
  await call("login", {}, { body: { username: body.username, password: body.password } });
  location.assign("/console");
});
$("#register-username").focus();
