import { ExecutorAgent, type WebSocketListener } from '../../executor-agent/executor-agent.js';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import { createLogger } from '../../src/logging/logger.js';

export interface RunningAgent {
  agent: ExecutorAgent;
  url: string;
  stop(): Promise<void>;
}

/** A real agent on a loopback port, in this process (its children are real processes). */
export async function startAgent(config: Partial<AgentConfig> = {}): Promise<RunningAgent> {
  const agent = new ExecutorAgent(config, createLogger('test-agent', 'silent'));
  const listener: WebSocketListener = await agent.listenWebSocket('ws://127.0.0.1:0');
  return {
    agent,
    url: listener.url,
    async stop() {
      agent.shutdown();
      await listener.close();
    },
  };
}
