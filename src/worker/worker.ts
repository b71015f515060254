/**
 * The Web Worker entry: the host (GPU device, engine, the API's calls; see `host.ts`) exposed through comlink.
 */
import * as Comlink from 'comlink';
import { installErrorTransfer } from './protocol.ts';
import { createHost } from './host.ts';

installErrorTransfer();
Comlink.expose(createHost({ close: () => self.close() }));
