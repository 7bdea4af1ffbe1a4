import { ExecutorAgent, type WebSocketListener } from '../../executor-agent/executor-agent.js';
import type { AgentConfig } from '../../executor-agent/agent-config.js';
import { ExecClient } from '../../src/client/exec-client.js';
import { createLogger } from '../../src/logging/logger.js';
import { RawRpcClient } from './raw-rpc-client.js';

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

/** A real agent with one initialized raw JSON-RPC peer and one `ExecClient` connected to it. */
export interface AgentWithClients {
  running: RunningAgent;
  raw: RawRpcClient;
  client: ExecClient;
  /** Closes both clients and stops the agent. */
  stop(): Promise<void>;
}

export async function startAgentWithClients(config: Partial<AgentConfig> = {}): Promise<AgentWithClients> {
  const running = await startAgent(config);
  const raw = await RawRpcClient.connect(running.url);
  await raw.initialize();
  const client = await ExecClient.connect(running.url);
  return {
    running,
    raw,
    client,
    async stop() {
      raw.close();
      client.close();
      await running.stop();
    },
  };
}
