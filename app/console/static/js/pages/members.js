import { call } from "../api.js";
import { params, signedIn, start, useOrg } from "../shell.js";
import { $, actionButton, copy, h, pageStatus, show, time } from "../ui.js";

const orgId = params.orgId;
const ROLES = ["viewer", "developer", "admin"];

function roleControl(member, alert) {
  const id = `role-${member.user_id}`;
  const select = h("select", { id, name: "role" }, ROLES.map((role) => h("option", { value: role, selected: role === member.role }, role)));
  select.addEventListener("change", async () => {
    try {
      await call("changeRole", { org_id: orgId, user_id: member.user_id }, { body: { role: select.value } });
      member.role = select.value;
      alert.textContent = "";
      pageStatus(`${member.username} is now ${select.value}.`);
    } catch (error) {
      if (error.status === undefined) throw error;
      select.value = member.role;
      alert.textContent = error.message;
    }
  });
  return [h("label", { for: id, class: "visually-hidden" }, `Role of ${member.username}`), select];
}

async function refresh(me, role) {
  const alert = $("#members-alert");
  const { data } = await call("members", { org_id: orgId }, { query: { limit: 200 } });
  show(
    $("#members tbody"),
    data.map((member) => {
      const isMe = member.user_id === me.id;
      const manage = role === "admin" && !isMe;
      return h(
        "tr",
        { "data-user": member.user_id },
        h("td", {}, member.username, isMe ? h("span", { class: "hint" }, " (you)") : null),
        h("td", {}, manage ? roleControl(member, alert) : member.role),
        h("td", {}, time(member.joined_at)),
        h("td", {}, manage ? actionButton("Remove", async () => {
          await call("removeMember", { org_id: orgId, user_id: member.user_id });
          await refresh(me, role);
        }, { confirmText: `Remove ${member.username} from the organization?`, alertTarget: alert, name: `Remove ${member.username}` }) : null),
      );
    }),
  );
}

start(async () => {
  const me = await signedIn();
  const role = useOrg(me, orgId);
  const org = (await call("org", { org_id: orgId })).data;
  $("#org-name").textContent = org.name;
  await refresh(me, role);
  $("#leave-org").replaceWith(
    actionButton("Leave this organization", async () => {
      await call("removeMember", { org_id: orgId, user_id: me.id });
      location.assign("/console?all");
    }, { kind: "danger", confirmText: `Leave ${org.name}?`, alertTarget: $("#members-alert") }),
  );
  if (role !== "admin") return;
  const code = $("#invite-code");
  code.value = org.invite_code;
  const alert = $("#invite-alert");
  $("#copy-invite").addEventListener("click", async () => {
    alert.textContent = (await copy(code.value, code)) ? "Copied." : "Selected: copy it with your keyboard.";
  });
  $("#rotate-invite").replaceWith(
    actionButton("Rotate invite code", async () => {
      code.value = (await call("rotateInvite", { org_id: orgId })).data.invite_code;
      alert.textContent = "Rotated: the old code no longer works.";
    }, { confirmText: "Rotate the invite code? The old one stops working at once.", alertTarget: alert }),
  );
});
