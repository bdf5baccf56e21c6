// The live link: /api/v1/live (server-sent events, only the caller's halls). Each event
// goes to the store at once; after a gap the state is reloaded from the REST routes.
import { whoAmI } from "./api.js";
import { EVENT_TYPES, applyEvent, emit, loadAll, store } from "./store.js";

let source = null;

function setConn(conn) {
  store.conn = conn;
  emit({ type: "conn" });
}

/** Open the live link (closing an earlier one); onSignedOut() if the session ended. */
export function connect(onSignedOut) {
  disconnect();
  const es = new EventSource("/api/v1/live");
  source = es;
  let lost = false;
  es.onopen = () => {
    setConn("ok");
    if (lost) loadAll().catch(console.error); // catch up on what the gap missed
    lost = false;
  };
  es.onerror = async () => {
    if (source !== es) return;
    setConn("lost");
    lost = true;
    if (es.readyState === EventSource.CLOSED) {
      // the server refused (401 after the session ended): check, then retry or sign out
      const me = await whoAmI().catch(() => undefined);
      if (me === null) {
        disconnect();
        onSignedOut();
      } else if (source === es) {
        setTimeout(() => source === es && connect(onSignedOut), 3000);
      }
    }
  };
  for (const type of EVENT_TYPES) {
    es.addEventListener(type, (ev) => {
      try {
        applyEvent(type, JSON.parse(ev.data));
      } catch (err) {
        console.error("live event", type, err);
      }
    });
  }
}

/** Close the live link. */
export function disconnect() {
  if (source) source.close();
  source = null;
}
