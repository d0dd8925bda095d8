/**
 * The dialogs that change the switchboard: issue a directive at a target (any ladder level,
 * optionally narrowed to some tools) and resume a directive. Each asks for a justification;
 * a global one also for a break-glass attestation. A refusal from the control plane is shown
 * as it came.
 */
import { LEVELS, formatRelease, type ApprovalRequest, type Directive, type Level } from '@killpath/protocol';
import type { ComponentChildren, Ref } from 'preact';
import { useContext, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';
import { SessionContext } from './context.ts';
import {
  LEVEL_HELP,
  directiveBody,
  emptyForm,
  errorText,
  needsBreakGlass,
  resumeBody,
  takesGrace,
  targetLabel,
  targetScope,
  type ActionForm,
  type FormErrors,
  type Target,
} from './model.ts';
import { Modal } from './modal.tsx';

/** Props of a field with its label, hint and error wired for assistive technology. */
interface FieldProps {
  id: string;
  label: string;
  hint?: string;
  error?: string | undefined;
  children: (aria: { id: string; 'aria-invalid': boolean; 'aria-describedby'?: string }) => ComponentChildren;
}

function Field({ id, label, hint, error, children }: FieldProps) {
  const described = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return (
    <div class={`field${error ? ' invalid' : ''}`}>
      <label for={id}>{label}</label>
      {hint && (
        <p id={`${id}-hint`} class="hint">
          {hint}
        </p>
      )}
      {children({
        id,
        'aria-invalid': Boolean(error),
        ...(described ? { 'aria-describedby': described } : {}),
      })}
      {error && (
        <p id={`${id}-error`} class="field-error">
          {error}
        </p>
      )}
    </div>
  );
}

const text = (e: Event) => (e.currentTarget as HTMLInputElement).value;

/** Props of {@link TextField}. */
interface TextFieldProps extends Omit<FieldProps, 'children'> {
  value: string;
  onValue(value: string): void;
  /** A textarea of this many rows; without it, an input. */
  rows?: number;
  /** A number input (at least 0) with this step and keyboard; without it, a text input. */
  number?: { step: string; inputMode: 'decimal' | 'numeric' };
  /** A text input that the browser neither fills in nor spell-checks. */
  plain?: { spellcheck?: false };
  required?: boolean;
  maxLength?: number;
  textareaRef?: Ref<HTMLTextAreaElement>;
}

/** One text field of the dialogs: an input or a textarea in its {@link Field}. */
function TextField({
  value,
  onValue,
  rows,
  number,
  plain,
  required,
  maxLength,
  textareaRef,
  ...field
}: TextFieldProps) {
  const common = {
    value,
    onInput: (e: Event) => onValue(text(e)),
    ...(required ? { required } : {}),
    ...(maxLength !== undefined ? { maxLength } : {}),
  };
  return (
    <Field {...field}>
      {(a) =>
        rows !== undefined ? (
          <textarea {...a} ref={textareaRef} rows={rows} {...common} />
        ) : number ? (
          <input {...a} type="number" min="0" step={number.step} inputMode={number.inputMode} {...common} />
        ) : (
          <input {...a} type="text" {...(plain ? { autocomplete: 'off', ...plain } : {})} {...common} />
        )
      }
    </Field>
  );
}

/** The justification every dialog requires, for the audit log. */
function JustificationField(p: {
  id: string;
  hint: string;
  error: string | undefined;
  value: string;
  onValue(v: string): void;
  textareaRef: Ref<HTMLTextAreaElement>;
}) {
  return <TextField {...p} label="Justification (required)" rows={3} required maxLength={4000} />;
}

/** The break-glass attestation a global directive (and its resume) requires. */
function BreakGlassField(p: {
  id: string;
  hint?: string;
  error: string | undefined;
  value: string;
  onValue(v: string): void;
}) {
  return <TextField {...p} label="Break-glass attestation (required)" rows={2} required maxLength={4000} />;
}

/** A refusal as the control plane gave it, then Cancel and the submit button. */
function DialogFooter(p: {
  failure: string | null;
  busy: boolean;
  submit: string;
  danger?: boolean;
  onClose(): void;
}) {
  return (
    <>
      {p.failure && (
        <p class="failure" role="alert">
          {p.failure}
        </p>
      )}
      <div class="buttons">
        <button type="button" onClick={p.onClose}>
          Cancel
        </button>
        <button type="submit" class={p.danger ? 'danger' : 'primary'} disabled={p.busy}>
          {p.busy ? 'Sending…' : p.submit}
        </button>
      </div>
    </>
  );
}

/** A refusal of the control plane in words for the dialog. */
const refused = (err: unknown) =>
  `The control plane refused: ${errorText(err instanceof ApiError ? err : { message: String(err) })}`;

/** Focuses the first field in error of `form`, in the form's order, once it has rendered. */
const focusFirstInvalid = (form: HTMLFormElement | null) =>
  queueMicrotask(() => form?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());

/** Props of {@link ActionDialog}. */
export interface ActionDialogProps {
  target: Target;
  level: Level;
  onClose(): void;
  onIssued(d: Directive, created: boolean): void;
}

/** Issues a directive at a target. */
export function ActionDialog({ target, level, onClose, onIssued }: ActionDialogProps) {
  const session = useContext(SessionContext)!;
  const [form, setForm] = useState<ActionForm>(() => emptyForm(level));
  const [errors, setErrors] = useState<FormErrors>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const justificationRef = useRef<HTMLTextAreaElement>(null);
  const formRef = useRef<HTMLFormElement>(null);
  const set = (patch: Partial<ActionForm>) => setForm((f) => ({ ...f, ...patch }));
  const global = needsBreakGlass(target);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setFailure(null);
    const r = directiveBody(target, form);
    if (!r.ok) {
      setErrors(r.errors);
      focusFirstInvalid(formRef.current);
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const res = await session.api.post<{ directive: Directive; created: boolean }>(
        '/v1/directives',
        r.body,
      );
      onIssued(res.directive, res.created);
    } catch (err) {
      setFailure(refused(err));
      setBusy(false);
    }
  };

  const title = `${form.level[0]!.toUpperCase()}${form.level.slice(1)} ${targetLabel(target)}`;
  return (
    <Modal title={title} titleId="action-title" onClose={onClose} initialFocus={justificationRef}>
      <p class="scope-line">
        Scope <code>{targetScope(target)}</code>
      </p>
      <form ref={formRef} noValidate onSubmit={submit}>
        <fieldset class="levels">
          <legend>Level</legend>
          {LEVELS.map((l) => (
            <label key={l} class="radio">
              <input
                type="radio"
                name="level"
                value={l}
                checked={form.level === l}
                onChange={() => set({ level: l })}
              />
              <span class="level-name">{l}</span> <span class="hint">{LEVEL_HELP[l]}</span>
            </label>
          ))}
        </fieldset>
        <TextField
          id="f-capabilities"
          label="Only these tools (optional)"
          hint="Capabilities separated by commas, e.g. crm.update; empty for every effect."
          error={errors.capabilities}
          plain={{ spellcheck: false }}
          value={form.capabilities}
          onValue={(v) => set({ capabilities: v })}
        />
        {form.level === 'throttle' && (
          <div class="row">
            <TextField
              id="f-rate"
              label="Effects per second"
              error={errors.perSecond}
              number={{ step: 'any', inputMode: 'decimal' }}
              value={form.perSecond}
              onValue={(v) => set({ perSecond: v })}
            />
            <Field id="f-per" label="Counted per">
              {(a) => (
                <select {...a} value={form.per} onChange={(e) => set({ per: text(e) as 'run' | 'agent' })}>
                  <option value="run">run</option>
                  <option value="agent">agent</option>
                </select>
              )}
            </Field>
          </div>
        )}
        {takesGrace(form.level) && (
          <div class="row">
            <TextField
              id="f-grace"
              label="Grace (ms, optional)"
              hint="Time covered work may take to finish before it is aborted."
              error={errors.graceMs}
              number={{ step: '1', inputMode: 'numeric' }}
              value={form.graceMs}
              onValue={(v) => set({ graceMs: v })}
            />
            {form.level === 'halt' && (
              <Field id="f-drain" label="Queued tasks">
                {(a) => (
                  <select
                    {...a}
                    value={form.drain}
                    onChange={(e) => set({ drain: text(e) as 'discard' | 'drain' })}
                  >
                    <option value="discard">discard</option>
                    <option value="drain">drain within the grace</option>
                  </select>
                )}
              </Field>
            )}
          </div>
        )}
        <TextField
          id="f-reason"
          label="Reason (optional)"
          hint="A short label, e.g. runaway loop."
          error={errors.reason}
          plain={{}}
          maxLength={500}
          value={form.reason}
          onValue={(v) => set({ reason: v })}
        />
        <JustificationField
          id="f-justification"
          hint="Why, for the audit log: incident, ticket, who decided."
          error={errors.justification}
          textareaRef={justificationRef}
          value={form.justification}
          onValue={(v) => set({ justification: v })}
        />
        {global && (
          <BreakGlassField
            id="f-breakglass"
            hint="This stops every tenant. State who authorised it and why nothing narrower will do."
            error={errors.breakGlass}
            value={form.breakGlass}
            onValue={(v) => set({ breakGlass: v })}
          />
        )}
        <DialogFooter
          failure={failure}
          busy={busy}
          submit={`Issue ${form.level}`}
          danger={form.level === 'kill' || form.level === 'halt'}
          onClose={onClose}
        />
      </form>
    </Modal>
  );
}

/** Props of {@link ResumeDialog}. */
export interface ResumeDialogProps {
  directive: Directive;
  onClose(): void;
  onResumed(d: Directive): void;
  /** The policy's approval rules made it a request that a second person must approve. */
  onRequested(a: ApprovalRequest): void;
}

/** Resumes (clears) an active directive. */
export function ResumeDialog({ directive, onClose, onResumed, onRequested }: ResumeDialogProps) {
  const session = useContext(SessionContext)!;
  const [justification, setJustification] = useState('');
  const [breakGlass, setBreakGlass] = useState('');
  const [sameRelease, setSameRelease] = useState(false);
  const [errors, setErrors] = useState<{ justification?: string; breakGlass?: string }>({});
  const [failure, setFailure] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const ref = useRef<HTMLTextAreaElement>(null);
  const formRef = useRef<HTMLFormElement>(null);

  const submit = async (e: Event) => {
    e.preventDefault();
    if (busy) return;
    setFailure(null);
    const r = resumeBody(directive, justification, breakGlass, sameRelease);
    if (!r.ok) {
      setErrors(r.errors);
      focusFirstInvalid(formRef.current);
      return;
    }
    setErrors({});
    setBusy(true);
    try {
      const res = await session.api.post<{ directive: Directive } | { approval: ApprovalRequest }>(
        `/v1/directives/${encodeURIComponent(directive.id)}/resume`,
        r.body,
      );
      if ('approval' in res) onRequested(res.approval);
      else onResumed(res.directive);
    } catch (err) {
      setFailure(refused(err));
      setBusy(false);
    }
  };

  return (
    <Modal
      title={`Resume ${directive.level} on ${directive.scopeText}`}
      titleId="resume-title"
      onClose={onClose}
      initialFocus={ref}
    >
      <p class="scope-line">
        Directive <code>{directive.id}</code>, issued by {directive.actor}: {directive.reason}
      </p>
      <form ref={formRef} noValidate onSubmit={submit}>
        <JustificationField
          id="r-justification"
          hint="Why it is safe to resume, for the audit log."
          error={errors.justification}
          textareaRef={ref}
          value={justification}
          onValue={setJustification}
        />
        {(directive.releases ?? []).length > 0 && (
          <div class="field">
            <p class="hint">
              It stopped runs on{' '}
              {directive.releases.map((r) => (
                <code key={formatRelease(r)}>{formatRelease(r)} </code>
              ))}
              : a resume is refused while a worker it would release still runs one of them.
            </p>
            <label>
              <input
                type="checkbox"
                checked={sameRelease}
                onChange={(e) => setSameRelease((e.currentTarget as HTMLInputElement).checked)}
              />{' '}
              Same release: it was not the cause (the justification says why; audited as an override)
            </label>
          </div>
        )}
        {needsBreakGlass(directive) && (
          <BreakGlassField
            id="r-breakglass"
            error={errors.breakGlass}
            value={breakGlass}
            onValue={setBreakGlass}
          />
        )}
        <DialogFooter failure={failure} busy={busy} submit="Resume" onClose={onClose} />
      </form>
    </Modal>
  );
}
