/**
 * Scripted models for `bench/adapters.ts`: each streams one chunk, then hangs and ignores its
 * abort signal, so that only an abort path outside the model can end the call.
 */
import type { Model } from '@openai/agents';
import { Usage } from '@openai/agents';
import { MockLanguageModelV4 } from 'ai/test';
import { AIMessageChunk } from '@langchain/core/messages';
import type { BaseMessage } from '@langchain/core/messages';
import type { CallbackManagerForLLMRun } from '@langchain/core/callbacks/manager';
import { BaseChatModel } from '@langchain/core/language_models/chat_models';
import { ChatGenerationChunk } from '@langchain/core/outputs';
import type { ChatResult } from '@langchain/core/outputs';

const never = () => new Promise<never>(() => {});

/** The AI SDK's `MockLanguageModelV4`, streaming "hello" and then nothing. */
export function hangingAiModel(): MockLanguageModelV4 {
  return new MockLanguageModelV4({
    doStream: async () => ({
      stream: new ReadableStream({
        start(controller) {
          controller.enqueue({ type: 'stream-start', warnings: [] });
          controller.enqueue({ type: 'text-start', id: 't' });
          controller.enqueue({ type: 'text-delta', id: 't', delta: 'hello' });
        },
      }),
    }),
  });
}

/** An OpenAI Agents `Model` streaming "hello" and then nothing. */
export function hangingAgentsModel(): Model {
  return {
    async getResponse() {
      return { output: [], usage: new Usage() };
    },
    async *getStreamedResponse() {
      yield { type: 'response_started' };
      yield { type: 'output_text_delta', delta: 'hello' };
      await never();
    },
  };
}

/** A LangChain chat model streaming "hello" and then nothing. */
export class HangingChatModel extends BaseChatModel {
  _llmType(): string {
    return 'hanging';
  }

  /** No tools in this model's calls: binding returns the model itself. */
  override bindTools(): this {
    return this;
  }

  async _generate(): Promise<ChatResult> {
    return never();
  }

  override async *_streamResponseChunks(
    _messages: BaseMessage[],
    _options: this['ParsedCallOptions'],
    runManager?: CallbackManagerForLLMRun,
  ): AsyncGenerator<ChatGenerationChunk> {
    const chunk = new ChatGenerationChunk({
      message: new AIMessageChunk({ content: 'hello' }),
      text: 'hello',
    });
    yield chunk;
    await runManager?.handleLLMNewToken('hello', undefined, undefined, undefined, undefined, { chunk });
    await never();
  }
}
