// The operator workspace (being built).
