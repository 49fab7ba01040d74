#!/usr/bin/env node
// The `birthgate` CLI. TypeScript runs through tsx's loader, so no build step stands between a
// fresh clone and a working command.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
