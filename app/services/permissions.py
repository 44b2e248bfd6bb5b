"""Who may do what inside an organization: the contract's role table, declared once.

`ROLE_TABLE` names the minimum role of every action; everything else reads it. The two rules that
are not a plain minimum role live here too, one function each: ending a deployment
(`require_may_end`) and removing a membership (`require_may_remove_member`).

The checks are applied by the access dependencies of `app/api/deps.py`, after the row was loaded
through `tenancy.load_scoped` (so outsiders get 404 before any role is looked at); services do not
check roles again.
"""

import enum
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TypeVar

from app.core.errors import Forbidden
from app.models.deployment import Deployment
from app.models.organization import Organization, Role
from app.models.prediction import Prediction
from app.services.tenancy import Scoped

T = TypeVar("T")


class Action(enum.StrEnum):
    """What the role table governs (docs/API.md, "Organizations and roles")."""

    read_organization = "read_organization"
    read_members = "read_members"
    read_clusters = "read_clusters"
    read_deployments = "read_deployments"
    read_events = "read_events"
    read_predictions = "read_predictions"
    create_deployment = "create_deployment"
    run_prediction = "run_prediction"
    end_own_deployment = "end_own_deployment"  # complete or cancel a deployment you created
    end_any_deployment = "end_any_deployment"  # complete or cancel anyone's
    create_cluster = "create_cluster"
    update_cluster = "update_cluster"
    delete_cluster = "delete_cluster"
    see_invite_code = "see_invite_code"
    rotate_invite_code = "rotate_invite_code"
    change_role = "change_role"
    remove_member = "remove_member"  # someone else's membership; leaving needs no role
    delete_organization = "delete_organization"
    cancel_own_prediction = "cancel_own_prediction"  # a prediction you made
    cancel_any_prediction = "cancel_any_prediction"
    manage_api_keys = "manage_api_keys"  # create, list and revoke the organization's keys
    read_audit = "read_audit"
    manage_webhooks = "manage_webhooks"  # see and rotate the callbacks' signing secret


ROLE_TABLE: Mapping[Action, Role] = MappingProxyType(
    {
        Action.read_organization: Role.viewer,
        Action.read_members: Role.viewer,
        Action.read_clusters: Role.viewer,
        Action.read_deployments: Role.viewer,
        Action.read_events: Role.viewer,
        Action.read_predictions: Role.viewer,
        Action.create_deployment: Role.developer,
        Action.run_prediction: Role.developer,
        Action.end_own_deployment: Role.developer,
        Action.end_any_deployment: Role.admin,
        Action.create_cluster: Role.admin,
        Action.update_cluster: Role.admin,
        Action.delete_cluster: Role.admin,
        Action.see_invite_code: Role.admin,
        Action.rotate_invite_code: Role.admin,
        Action.change_role: Role.admin,
        Action.remove_member: Role.admin,
        Action.delete_organization: Role.admin,
        Action.cancel_own_prediction: Role.developer,
        Action.cancel_any_prediction: Role.admin,
        Action.manage_api_keys: Role.admin,
        Action.read_audit: Role.admin,
        Action.manage_webhooks: Role.admin,
    }
)
"""The minimum role of each action: the one declaration of the contract's role table."""


def allows(role: Role, action: Action) -> bool:
    return role.allows(ROLE_TABLE[action])


def require(access: Scoped[T], action: Action) -> Scoped[T]:
    """`access`, if the caller's role allows `action`; 403 `forbidden` otherwise."""
    if not allows(access.role, action):
        raise Forbidden()
    return access


def require_may_end(access: Scoped[Deployment]) -> Scoped[Deployment]:
    """A member may end (complete or cancel) a deployment if their role allows ending anyone's,
    or allows ending their own and they created it."""
    own = "Developers may only act on their own deployments."
    any_, mine = Action.end_any_deployment, Action.end_own_deployment
    return _require_own_or_any(access, access.row.created_by, any_, mine, own)


def require_may_cancel(access: Scoped[Prediction]) -> Scoped[Prediction]:
    """A member may cancel a prediction if their role allows cancelling anyone's, or allows
    cancelling their own and they made it."""
    own = "Developers may only cancel their own predictions."
    any_, mine = Action.cancel_any_prediction, Action.cancel_own_prediction
    return _require_own_or_any(access, access.row.created_by, any_, mine, own)


def _require_own_or_any(
    access: Scoped[T], created_by: uuid.UUID, any_: Action, own: Action, only_own: str
) -> Scoped[T]:
    if allows(access.role, any_):
        return access
    require(access, own)
    if created_by != access.user_id:
        raise Forbidden(message=only_own)
    return access


def require_may_remove_member(
    access: Scoped[Organization], member_id: uuid.UUID | None
) -> Scoped[Organization]:
    """A member may remove a membership if it is their own (leaving) or their role allows removing
    members. `member_id` is None when the path's id is not a UUID (no such member)."""
    if member_id != access.user_id:
        require(access, Action.remove_member)
    return access
