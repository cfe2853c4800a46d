// A minimal event hub: window.exact.on(event, fn) for selection, edit, save (and view, load).
export function createEvents() {
  const subs = new Map();
  return {
    on(event, fn) {
      if (!subs.has(event)) subs.set(event, new Set());
      subs.get(event).add(fn);
      return () => subs.get(event).delete(fn);
    },
    emit(event, detail) {
      for (const fn of subs.get(event) || []) {
        try { fn(detail); } catch (e) { console.error(`exact.on(${event}):`, e); }
      }
    },
  };
}
