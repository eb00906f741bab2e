// The control API's routes, as the console uses them.

// url resolves an API path against the page, so the console also works
// when the control handler is mounted under a prefix.
export const url = (path) => new URL('.' + path, location.href);

export async function get(path) {
  const r = await fetch(url(path), { headers: { Accept: 'application/json' } });
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${(await r.json().catch(() => ({}))).error || ''}`);
  return r.json();
}

export async function send(method, path, body) {
  const r = await fetch(url(path), {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const v = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${v.error || ''}`);
  return v;
}

// The levers, each an explicit route of the control API.
export const levers = {
  kill: (id) => send('POST', `/api/brokers/${id}/kill`),
  stop: (id) => send('POST', `/api/brokers/${id}/stop`),
  restart: (id) => send('POST', `/api/brokers/${id}/restart`),
  powercut: (id) => send('POST', `/api/brokers/${id}/powercut`),
  killController: (id) => send('POST', `/api/controllers/${id}/kill`),
  restartController: (id) => send('POST', `/api/controllers/${id}/restart`),
  cut: (a, b) => send('POST', '/api/network/cut', { a, b }),
  undo: (faultId) => send('DELETE', `/api/faults/${faultId}`),
  healAll: () => send('POST', '/api/network/heal'),
};

