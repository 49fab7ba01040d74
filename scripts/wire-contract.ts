// npm run contract: write contracts/wire/admission.schema.json from the zod contract (contracts/wire.ts).
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../config/index.ts';
import { wireContractJson } from '../contracts/wire.ts';

const out = path.join(projectRoot, 'contracts', 'wire', 'admission.schema.json');
fs.mkdirSync(path.dirname(out), { recursive: true });
fs.writeFileSync(out, wireContractJson());
console.log(`written ${path.relative(projectRoot, out)}`);
