import { call } from "../api.js";
import { $, onSubmit } from "../ui.js";

/** Only a console page may be the way back: never another site. */
function next() {
  const target = new URLSearchParams(location.search).get("next") || "";
  return /^\/console(\/|$|\?)/.test(target) ? target : "/console";
}

onSubmit($("#sign-in"), async (body) => {
  await call("login", {}, { body });
  location.assign(next());
});
$("#sign-in-username").focus();
