// The editing session of one slide page (filled in by the tools, panels and save modules).
export function startEditing(ctx, side) {
  return {
    async annotationsAt(x, y) { return ctx.layer.idsAt(x, y); },
  };
}
