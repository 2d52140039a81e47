/**
 * What the page's modules share and change, in one object: an importer cannot assign an
 * imported binding, but it can set a property of an imported object.
 */
export const state = {
  /** Set once by app.js from /api/session; the csrf token goes on every POST. */
  session: { username: '', csrfToken: '' },
  /** The latest snapshot, for actions that describe what they change. */
  snapshot: undefined,
};
