/** Runs one heartbeat may report (`POST /v1/workers/{id}/heartbeat`); more answer 400 naming the limit. */
export const MAX_RUNS_PER_HEARTBEAT = 500;
