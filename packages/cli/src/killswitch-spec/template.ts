/**
 * The commented kill-switch specification `killpath spec init` writes, filled in for the demo
 * fleet (the agents `killpath demo` starts). `examples/demo-fleet.spec.yaml` is this text,
 * byte for byte (a unit test keeps them equal).
 */
export const SPEC_TEMPLATE = `# Kill-switch specification (killpath spec check FILE validates it).
#
# The contract for how this fleet's agents are stopped: the six components of a kill-switch
# specification (1 scope, 2 triggers, 3 mechanism, 4 latency targets, 5 side effects,
# 6 rehearsal cadence) and who to call. The drill judges each rehearsal against it, and
# "killpath runbook --spec FILE" turns it into the on-call runbook. Version it with the agents:
# a change of tools, autonomy or memory makes a rehearsal due.
#
# Omitted sections take the defaults shown here; unknown keys are errors.

# Format of this file (1 is the only one so far).
version: 1

# Name of the fleet or agent this spec covers: the title of the runbook and of drill records.
name: demo-fleet

# Where the control plane is, for the runbook's commands (the on-call engineer's
# KILLPATH_URL) and the operator console (default: url + "/").
controlPlane:
  url: http://127.0.0.1:7070
  consoleUrl: http://127.0.0.1:7070/

# The agents this spec covers. Per agent:
#   tenant, agent  its identity (letters, digits and ._:@-); scopes name it as agent:TENANT/AGENT
#   level          autonomy level 3, 4 or 5: sets its signal-to-halt target (4) and cadence (6)
#   description    what it does, one paragraph: the first thing the 02:00 on-call engineer reads
#   tools          every tool it may call, with its effect class, which decides what a halt does
#                  to a call in flight (5): read, write or irreversible; a write's compensation
#                  is the action that undoes it (listed by killpath compensations)
#   memory         whether it writes long-term memory (staged writes are reverted or committed)
#   features       feature flags its runs declare (a feature-scoped halt stops them)
#   command        how one session is started, for the runbook's replacement-session step
agents:
  - tenant: acme
    agent: support-bot
    level: 4
    description: >-
      Works acme's customer-support queue. For each ticket it searches the knowledge base,
      updates the customer's CRM record, queues the reply in its outbox, syncs ticket state
      every 200 ms and exports a weekly support report. It runs on the new planner.
    # The demo agents share one tool set: the anchor (&) names it, the aliases (*) reuse it.
    tools: &demo-tools
      - name: search
        class: read
        description: looks a record up in the knowledge base (a few ms)
      - name: crm.update
        class: write
        compensation: crm.revert
        description: writes one CRM record, with an idempotency key per record
      - name: export_report
        class: write
        description: builds and uploads the weekly report; slow (seconds), the call a halt must cancel
      - name: sync
        class: write
        description: pushes ticket state to the ticketing system every 200 ms, on a timer of the run
      - name: outbox.send
        class: write
        description: sends one queued outgoing message, taken from the outbox queue
      - name: wire_transfer
        class: irreversible
        compensation: recall_transfer
        description: moves money; waits out a cool-off first, and a halt during the cool-off cancels it
    memory: false
    features: [new-planner]
    command: node examples/demo-agent/dist/agent.js

  - tenant: acme
    agent: billing-bot
    level: 5
    description: >-
      Settles acme's supplier invoices. It reconciles invoices against the CRM, records what it
      paid, and moves money with wire_transfer, an irreversible tool that passes a cool-off
      before the transfer is released. Highest autonomy in the fleet: a one-second target.
    tools: *demo-tools
    memory: false
    features: []
    command: node examples/demo-agent/dist/agent.js

  - tenant: globex
    agent: research-bot
    level: 3
    description: >-
      Answers globex analysts' research questions: searches sources, records findings in the
      CRM, exports report drafts and sends the answers through its outbox. A person reviews
      its output before it is used.
    tools: *demo-tools
    memory: false
    features: []
    command: node examples/demo-agent/dist/agent.js

  - tenant: globex
    agent: ops-bot
    level: 4
    description: >-
      Runs globex's routine operations: reads system state, updates the CRM's asset records,
      keeps the ticketing system in sync on a timer, and sends status notices from its outbox.
    tools: *demo-tools
    memory: false
    features: []
    command: node examples/demo-agent/dist/agent.js

  - tenant: initech
    agent: sales-bot
    level: 3
    description: >-
      Follows up initech's sales leads: looks leads up, updates their CRM records, queues
      follow-up emails in its outbox and exports a weekly pipeline report.
    tools: *demo-tools
    memory: false
    features: []
    command: node examples/demo-agent/dist/agent.js

# 1 — Scope: what the switch can halt, smallest blast radius first. The drill rehearses each.
#   capability  one tool of a run, agent or tenant (freeze wire_transfer, keep reads going)
#   run         one session and its child runs; other sessions continue
#   agent       every run of one agent; other agents continue
#   tenant      every agent of one tenant; other tenants continue
#   global      everything (admin token and a break-glass attestation; a design note here)
# Must include run and agent.
scope:
  levels: [capability, run, agent, tenant]

# 2 — Triggers: who or what can throw the switch.
triggers:
  # Operator paths: console (a button, gated by role), api (POST /v1/directives with a
  # token; global needs a break-glass attestation), cli (killpath kill).
  synchronous: [console, api, cli]
  # Runtime paths: rules the supervisor evaluates on each run's telemetry ("killpath spec
  # policy FILE" prints them as a policy). Each halts the run that tripped it.
  #   enabled    false leaves the rule out
  #   threshold  cost_cap: USD spent; loop_length: steps taken; tool_error_rate: share of
  #              failed tool calls (0-1) over windowSeconds; auth_denial, memory_schema:
  #              how many before it fires (1 = the first); anomaly: detector score (0-1)
  #   mode       enforce acts; shadow only records what it would have done (a canary)
  asynchronous:
    cost_cap: { enabled: true, threshold: 5, mode: enforce }
    loop_length: { enabled: true, threshold: 200, mode: enforce }
    tool_error_rate: { enabled: true, threshold: 0.3, windowSeconds: 60, mode: enforce }
    auth_denial: { enabled: true, threshold: 1, mode: enforce }
    memory_schema: { enabled: true, threshold: 1, mode: enforce }
    anomaly: { enabled: true, threshold: 0.9, mode: shadow }
  # Deadman: each worker heartbeats every intervalMs (at least 100); missing that many in a
  # row (at least 1) halts its runs and kills the process through its launcher.
  deadman: { intervalMs: 5000, missed: 3 }

# 3 — Mechanism: how the halt is carried out.
mechanism:
  # The SDK's gate refuses every covered effect before it starts and aborts in-flight writes.
  primary: cooperative
  # When cooperation is not enough: process-signal (the launcher sends SIGTERM, then SIGKILL
  # after killGraceMs, to every process of the agent: its cgroup, or its process group where
  # cgroups are unavailable), network-isolation, or none.
  fallback: process-signal
  killGraceMs: 2000
  # Egress of launched agents, cut by an isolate: proxy, netns (Linux, root) or none.
  isolation: proxy
  # Grace of a halt, ms: queued tasks may drain inside it (queue: drain below), and a worker
  # that has not reported halted by then is escalated to a kill.
  haltGraceMs: 5000
  # Freeze, between halt and kill: the launcher stops every process of the agent at once
  # (cgroup.freeze, or SIGSTOP), cuts its egress and keeps its memory; killpath inspect takes
  # the evidence, then a resume thaws it or a step up kills it. true: the runbook offers it
  # and the drill rehearses it.
  freeze: true

# 4 — Latency targets, ms.
latency:
  # Trigger fired to the agent issuing no further tool call or memory write, per autonomy
  # level; must not loosen as autonomy rises (5 <= 4 <= 3).
  signalToHaltMs: { 3: 5000, 4: 2000, 5: 1000 }
  # Halt to the point where a replacement session can reliably start.
  haltToRecoveryMs: 300000

# 5 — Side effects: what a halt leaves behind.
sideEffects:
  # Tool calls in flight at the halt, by class: reads complete (idempotent), writes abort
  # (their compensation is listed), irreversible calls still in their cool-off are cancelled.
  inFlight: { read: complete, write: abort, irreversible: cool-off }
  # Memory writes staged in the current step: revert or commit.
  memory: revert
  # Tasks queued for the run: discard, or drain inside the halt's grace.
  queue: discard
  # Kept for post-incident review.
  preserve: [audit log, run journal, compensations list, report drafts]
  # Dropped by the halt.
  purge: [queued outbox messages, pending timers and retries]
  # Audit events the switch must emit (the drill checks them); must include
  # kill_switch.fired, session.halted and in_flight_tool_calls.status.
  auditEvents:
    - operator_action
    - directive.issued
    - kill_switch.fired
    - session.halted
    - in_flight_tool_calls.status
    - effect.aborted
    - timer.cancelled
    - queue.discarded

# 6 — Rehearsal cadence: a switch that is never fired is not a switch.
rehearsal:
  # Days between rehearsals per autonomy level: monthly for 4 and 5, quarterly for 3.
  cadenceDays: { 3: 91, 4: 30, 5: 30 }
  # Material changes that make a rehearsal due at once, whatever the cadence.
  onChange: [tools, autonomy, memory]
  # How long the drill watches after each flip, ms (queue state after a window).
  windowMs: 60000

# Who to call, asked in order: the runbook's decision tree. The first "when" that holds
# names who to page; contact says the role and how to reach it.
escalation:
  - when: the switch did not stop the agent (it still shows running, or effects were permitted after the halt was committed)
    contact: platform on-call, then the incident commander (page the platform rotation)
  - when: memory integrity is in question
    contact: data-governance on-call (page the data-governance rotation)
  - when: money moved (a wire_transfer landed)
    contact: finance on-call (phone the finance duty number; recall_transfer needs them)
  - when: customer-facing output was affected
    contact: communications on-call (page the communications rotation)

# Two people resume (optional; none by default: one person resumes). Stopping is never gated.
# Each rule goes into the policy (killpath spec policy) and the runbook names the contact.
# approvals:
#   - name: wide_resume
#     action: resume            # resume | policy.apply
#     scopes: [global, tenant]  # resuming a directive at these scopes...
#     breakGlass: true          # ...or one issued with break-glass
#     approvals: 1              # approvals needed from people other than the requester
#     approvers: admin          # admin | operator (operators of the tenant, or admins)
#     within: 15m               # the request expires after this
#     contact: platform on-call lead (page the platform rotation)
`;
