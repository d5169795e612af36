/** Every verb, in the order `stratoswarm --help` lists them. */
import type { Command } from 'commander';
import { registerRun } from './run.js';
import { registerCreate } from './create.js';
import { registerStart } from './start.js';
import { registerPs } from './ps.js';
import { registerInspect } from './inspect.js';
import { registerLogs } from './logs.js';
import { registerExec } from './exec.js';
import { registerAttach } from './attach.js';
import { registerStop } from './stop.js';
import { registerKill } from './kill.js';
import { registerRm } from './rm.js';
import { registerPause } from './pause.js';
import { registerUnpause } from './unpause.js';
import { registerUpdate } from './update.js';
import { registerStats } from './stats.js';
import { registerTop } from './top.js';
import { registerWait } from './wait.js';
import { registerCheckpoint } from './checkpoint.js';
import { registerImages } from './images.js';
import { registerPull } from './pull.js';
import { registerImport } from './import.js';
import { registerRmi } from './rmi.js';
import { registerPrune } from './prune.js';
import { registerPersonalities } from './personalities.js';
import { registerEvolution } from './evolution.js';
import { registerGpus } from './gpus.js';
import { registerTopology } from './topology.js';
import { registerInfo } from './info.js';
import { registerVersion } from './version.js';
import { registerCompletion } from './completion.js';
import { registerOci } from './oci.js';

export const VERBS: readonly ((program: Command) => void)[] = [
  registerRun,
  registerCreate,
  registerStart,
  registerPs,
  registerInspect,
  registerLogs,
  registerExec,
  registerAttach,
  registerStop,
  registerKill,
  registerRm,
  registerPause,
  registerUnpause,
  registerUpdate,
  registerStats,
  registerTop,
  registerWait,
  registerCheckpoint,
  registerImages,
  registerPull,
  registerImport,
  registerRmi,
  registerPrune,
  registerPersonalities,
  registerEvolution,
  registerGpus,
  registerTopology,
  registerInfo,
  registerVersion,
  registerCompletion,
  registerOci,
];
