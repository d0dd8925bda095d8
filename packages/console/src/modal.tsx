/**
 * A modal dialog on the native `<dialog>`: the rest of the page is inert while it is open,
 * Escape closes it, focus goes to `initialFocus` (else the first field) and back to what had
 * it before when it closes.
 */
import type { ComponentChildren, RefObject } from 'preact';
import { useEffect, useRef } from 'preact/hooks';

/** Props of {@link Modal}. */
export interface ModalProps {
  title: string;
  titleId: string;
  onClose(): void;
  initialFocus?: RefObject<HTMLElement | null>;
  children: ComponentChildren;
}

export function Modal({ title, titleId, onClose, initialFocus, children }: ModalProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const closeRef = useRef(onClose);
  closeRef.current = onClose;

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const opener = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const onNativeClose = () => closeRef.current();
    dialog.addEventListener('close', onNativeClose);
    dialog.showModal();
    const first =
      initialFocus?.current ?? dialog.querySelector<HTMLElement>('input, textarea, select, button');
    first?.focus();
    return () => {
      dialog.removeEventListener('close', onNativeClose);
      if (dialog.open) dialog.close();
      // Back to the button that opened the dialog if it is still on the page.
      if (opener?.isConnected) opener.focus();
      else document.getElementById('main')?.focus();
    };
  }, []);

  return (
    <dialog ref={ref} class="modal" aria-labelledby={titleId}>
      <h2 id={titleId}>{title}</h2>
      {children}
    </dialog>
  );
}
