/**
 * The policy a fresh control plane installs as version 1: the seed's asynchronous rules (cost
 * cap, loop length, tool-error rate, authorisation denial, memory schema violation), an
 * anomaly rule in shadow mode as an example of a canary, run limits the SDK also enforces
 * locally, and the deadman defaults. `killpath policy default` prints it.
 */
export const DEFAULT_POLICY = `# killpath policy: rules are data. Apply a changed copy with
#   killpath policy apply policy.yaml --comment "why"
# and roll back with killpath policy rollback <version>.
version: 1
description: default policy (seed rules)

# Constants the rules read as params.<name>.
params:
  tool_error_rate: 0.3      # share of failed tool calls over 60 s that halts a run
  tool_error_min_calls: 5   # ... once the run made at least this many calls in the window

# Run limits: the rules below compare against limits.max_steps and limits.max_cost_usd, and
# the SDK enforces the same numbers by itself (also when the control plane is unreachable).
limits:
  default: { maxSteps: 200, maxCostUsd: 5.0 }
  # agents:
  #   acme/reader: { maxSteps: 2000, maxCostUsd: 20 }

# Deadman: heartbeats every intervalMs; missed of them in a row halt the worker's runs and,
# without their acknowledgement within killAfterMs, kill the process through its launcher.
deadman:
  default: { intervalMs: 5000, missed: 3, killAfterMs: 0 }
  # agents:
  #   acme/fast-loop: { intervalMs: 1000, missed: 3 }
  #   acme/reader: { intervalMs: 30000, missed: 4 }

rules:
  - name: cost_cap
    description: the run spent more than its budget
    when: run.cost_usd > limits.max_cost_usd
    action: { level: halt, scope: run }

  - name: loop_length
    description: the run took more steps than allowed
    when: run.steps > limits.max_steps
    action: { level: halt, scope: run }

  - name: tool_error_rate
    description: more than 30 % of the run's tool calls failed over the last 60 s
    when: >-
      window(run, "60s").tool_calls >= params.tool_error_min_calls &&
      window(run, "60s").tool_error_rate > params.tool_error_rate
    action: { level: halt, scope: run }

  - name: auth_denial
    description: >-
      the run attempted an effect it is not authorised for (refusals a degrade or isolate in
      force explains are the operator's choice, not the agent overreaching: not counted here)
    when: run.auth_denials > run.revoked_denials
    action: { level: halt, scope: run }

  - name: memory_schema
    description: the run tried to write memory that violates its schema
    when: run.schema_violations > 0
    action: { level: halt, scope: run }

  - name: anomaly
    description: the agent's own detector flagged the run (canary; set mode enforce to act)
    when: run.anomaly_score >= 0.9
    action: { level: halt, scope: run }
    mode: shadow
`;
