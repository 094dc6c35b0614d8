/** The phoneside CLI run from the sources (no build needed): node --import tsx scripts/cli.ts VERB ... */
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
