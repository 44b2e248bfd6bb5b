import { call } from "../api.js";
import { lastOrg, signedIn, start, useOrg } from "../shell.js";
import { $, h, onSubmit, show } from "../ui.js";

start(async () => {
  const me = await signedIn();
  useOrg(me, null);
  // Straight to the organization last used here, or the only one; ?all stays on the list.
  const orgs = me.organizations;
  const landing = orgs.find((org) => org.id === lastOrg()) ?? (orgs.length === 1 ? orgs[0] : null);
  if (landing && !new URLSearchParams(location.search).has("all")) {
    location.replace(`/console/orgs/${landing.id}`);
    return;
  }
  show(
    "#orgs",
    me.organizations.length
      ? me.organizations.map((org) => h("li", { class: "tile" }, h("a", { href: `/console/orgs/${org.id}` }, org.name), h("span", { class: "hint" }, ` ${org.role}`)))
      : h("li", { class: "hint" }, "You belong to no organization yet: create one, or join one with its invite code."),
  );
  onSubmit($("#create-org"), async (body) => {
    const org = (await call("createOrg", {}, { body })).data;
    location.assign(`/console/orgs/${org.id}`);
  });
  onSubmit($("#join-org"), async (body) => {
    const org = (await call("joinOrg", {}, { body })).data;
    location.assign(`/console/orgs/${org.id}`);
  });
});
