// The console's only way to the service: the JSON API, with the browser's session cookie.
// ROUTES lists every call the console can make, as the API's own method and route template;
// tests/api/test_console_rules.py checks each is a route the access tests cover, and that the
// browser never sends any other. The console adds no rule: what the API refuses, it shows.

export const ROUTES = {
  register: ["POST", "/api/v1/auth/register"],
  login: ["POST", "/api/v1/auth/login"],
  logout: ["POST", "/api/v1/auth/logout"],
  me: ["GET", "/api/v1/auth/me"],
  createOrg: ["POST", "/api/v1/organizations"],
  joinOrg: ["POST", "/api/v1/organizations/join"],
  org: ["GET", "/api/v1/organizations/{org_id}"],
  rotateInvite: ["POST", "/api/v1/organizations/{org_id}/invite-code"],
  members: ["GET", "/api/v1/organizations/{org_id}/members"],
  changeRole: ["PATCH", "/api/v1/organizations/{org_id}/members/{user_id}"],
  removeMember: ["DELETE", "/api/v1/organizations/{org_id}/members/{user_id}"],
  clusters: ["GET", "/api/v1/organizations/{org_id}/clusters"],
  createCluster: ["POST", "/api/v1/organizations/{org_id}/clusters"],
  cluster: ["GET", "/api/v1/clusters/{cluster_id}"],
  updateCluster: ["PATCH", "/api/v1/clusters/{cluster_id}"],
  deleteCluster: ["DELETE", "/api/v1/clusters/{cluster_id}"],
  clusterEvents: ["GET", "/api/v1/clusters/{cluster_id}/events"],
  clusterDeployments: ["GET", "/api/v1/clusters/{cluster_id}/deployments"],
  createDeployment: ["POST", "/api/v1/clusters/{cluster_id}/deployments"],
  orgDeployments: ["GET", "/api/v1/organizations/{org_id}/deployments"],
  deployment: ["GET", "/api/v1/deployments/{deployment_id}"],
  deploymentEvents: ["GET", "/api/v1/deployments/{deployment_id}/events"],
  completeDeployment: ["POST", "/api/v1/deployments/{deployment_id}/complete"],
  cancelDeployment: ["POST", "/api/v1/deployments/{deployment_id}/cancel"],
  predict: ["POST", "/api/v1/deployments/{deployment_id}/predict"],
  predictions: ["GET", "/api/v1/deployments/{deployment_id}/predictions"],
  prediction: ["GET", "/api/v1/predictions/{prediction_id}"],
  cancelPrediction: ["POST", "/api/v1/predictions/{prediction_id}/cancel"],
  models: ["GET", "/api/v1/models"],
  strategies: ["GET", "/api/v1/scheduling/strategies"],
  apiKeys: ["GET", "/api/v1/organizations/{org_id}/api-keys"],
  createApiKey: ["POST", "/api/v1/organizations/{org_id}/api-keys"],
  revokeApiKey: ["DELETE", "/api/v1/api-keys/{api_key_id}"],
  audit: ["GET", "/api/v1/organizations/{org_id}/audit"],
};

/** An error answer of the API: its status and its contract body (`error`, `code`, `fields`). */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `The service answered ${status}.`);
    this.status = status;
    this.code = body?.code || "unknown";
    this.fields = body?.fields || [];
    this.body = body || {};
  }
}

function fill(template, params) {
  return template.replace(/\{(\w+)\}/g, (_, key) => {
    if (params[key] === undefined) throw new Error(`${template} needs ${key}`);
    return encodeURIComponent(params[key]);
  });
}

/**
 * Calls one of ROUTES. Returns {status, data, total} (total from X-Total-Count on lists);
 * throws ApiError for a 4xx or 5xx. A 401 on any call but signing in sends the browser to the
 * sign-in page, which brings it back here afterwards.
 */
export async function call(name, params = {}, { body, query, headers } = {}) {
  const [method, template] = ROUTES[name];
  let url = fill(template, params);
  if (query) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") search.set(key, value);
    }
    if ([...search].length) url += `?${search}`;
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    throw new ApiError(0, { error: "The service could not be reached; try again.", code: "unreachable" });
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // Not the API's JSON (a proxy's page, a cut connection): reported by its status alone.
  }
  if (response.status === 401 && name !== "login" && !location.pathname.startsWith("/console/sign-in")) {
    const next = location.pathname + location.search;
    location.assign(`/console/sign-in?next=${encodeURIComponent(next)}`);
    throw new ApiError(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  const total = response.headers.get("X-Total-Count");
  return { status: response.status, data, total: total === null ? null : Number(total), headers: response.headers };
}

/** The last `limit` rows of an oldest-first paged list (the API sends its total). */
export async function latest(name, params, limit, query = {}) {
  const first = await call(name, params, { query: { ...query, limit } });
  if (first.total === null || first.total <= limit) return first;
  return call(name, params, { query: { ...query, limit, offset: first.total - limit } });
}
