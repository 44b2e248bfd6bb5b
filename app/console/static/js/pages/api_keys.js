import { call } from "../api.js";
import { params, signedIn, start, useOrg } from "../shell.js";
import { $, actionButton, copy, h, onSubmit, show, time } from "../ui.js";

const orgId = params.orgId;

async function refresh() {
  const { data } = await call("apiKeys", { org_id: orgId }, { query: { limit: 200 } });
  show(
    $("#keys tbody"),
    data.length
      ? data.map((key) => h("tr", { "data-key": key.id },
          h("td", {}, key.name), h("td", {}, key.role), h("td", {}, h("code", {}, key.prefix)),
          h("td", {}, time(key.created_at)), h("td", {}, time(key.last_used_at)), h("td", {}, time(key.expires_at)), h("td", {}, time(key.revoked_at)),
          h("td", {}, key.revoked_at ? null : actionButton("Revoke", async () => {
            await call("revokeApiKey", { api_key_id: key.id });
            await refresh();
          }, { kind: "danger", confirmText: `Revoke ${key.name}? Programs using it stop at once.`, alertTarget: $("#keys-alert"), name: `Revoke ${key.name}` }))))
      : h("tr", {}, h("td", { colspan: 8, class: "hint" }, "No key yet.")),
  );
}

start(async () => {
  const me = await signedIn();
  const role = useOrg(me, orgId);
  $("#org-name").textContent = me.organizations.find((o) => o.id === orgId)?.name ?? "";
  if (role !== "admin") {
    $("#keys-alert").textContent = "Only the organization's admins manage its API keys.";
    return;
  }
  await refresh();
  onSubmit($("#create-key"), async (body) => {
    const key = (await call("createApiKey", { org_id: orgId }, { body })).data;
    $("#create-key").reset();
    $("#new-key").hidden = false;
    $("#new-key-secret").value = key.key;
    $("#new-key-secret").focus();
    await refresh();
  });
  $("#copy-key").addEventListener("click", () => copy($("#new-key-secret").value, $("#new-key-secret")));
});
