/**
 * The kernel's one connection to NATS. Every NATS-specific option (TLS, credentials, reconnection)
 * is decided here; the rest of src/cluster/ gets a connected NatsConnection.
 *
 * Reconnection is NATS's own: forever, every 250 ms with jitter, buffering what is published
 * meanwhile up to its default limit. A first connection that fails is an error (the kernel does not
 * start clustered on a NATS it cannot reach); refused credentials are PERMISSION_DENIED.
 */
import { readFile } from 'node:fs/promises';
import type { Authenticator, ConnectionOptions, NatsConnection } from '@nats-io/nats-core';
import { IpcError } from '../errors.js';
import type { ResolvedClusterOptions } from './cluster-options.js';

async function authOptions(o: ResolvedClusterOptions): Promise<Partial<ConnectionOptions>> {
  const auth = o.auth;
  if (auth === undefined) return {};
  if ('token' in auth) return { token: auth.token };
  if ('user' in auth) return { user: auth.user, pass: auth.pass };
  const core = await import('@nats-io/nats-core');
  let authenticator: Authenticator;
  if ('credsFile' in auth) authenticator = core.credsAuthenticator(await readFile(auth.credsFile));
  else
    authenticator = core.nkeyAuthenticator(
      new TextEncoder().encode((await readFile(auth.nkeySeedFile, 'utf8')).trim()),
    );
  return { authenticator };
}

export async function connectNats(o: ResolvedClusterOptions): Promise<NatsConnection> {
  const { connect } = await import('@nats-io/transport-node');
  const { errors } = await import('@nats-io/nats-core');
  const options: ConnectionOptions = {
    servers: o.servers,
    name: `ipcbox kernel ${o.name}/${o.node}`,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 250,
    waitOnFirstConnect: false,
    ...(await authOptions(o)),
  };
  if (o.tls !== undefined) {
    options.tls = {};
    if (o.tls.caFile !== undefined) options.tls.caFile = o.tls.caFile;
    if (o.tls.certFile !== undefined) options.tls.certFile = o.tls.certFile;
    if (o.tls.keyFile !== undefined) options.tls.keyFile = o.tls.keyFile;
  }
  try {
    return await connect(options);
  } catch (cause) {
    const why = cause instanceof Error ? cause.message : String(cause);
    if (cause instanceof errors.AuthorizationError || cause instanceof errors.UserAuthenticationExpiredError)
      throw new IpcError(
        'PERMISSION_DENIED',
        `NATS at ${o.servers.join(', ')} refused this kernel's credentials: ${why}`,
        {
          cause,
        },
      );
    throw new IpcError('CLUSTER_UNAVAILABLE', `cannot reach NATS at ${o.servers.join(', ')}: ${why}`, {
      cause,
    });
  }
}
