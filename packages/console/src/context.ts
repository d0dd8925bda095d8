/** What every view needs from the signed-in session, passed down through one Preact context. */
import { createContext } from 'preact';
import type { Directive, Level, Principal } from '@killpath/protocol';
import type { Api } from './api.ts';
import type { Target } from './model.ts';

/** The signed-in session as views see it. */
export interface Session {
  api: Api;
  principal: Principal;
  /** Opens the action dialog for a target with a level chosen. */
  openAction(target: Target, level: Level): void;
  /** Opens the resume dialog for an active directive. */
  openResume(directive: Directive): void;
}

export const SessionContext = createContext<Session | null>(null);
