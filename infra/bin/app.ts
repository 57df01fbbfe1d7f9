/**
 * The CDK app (cdk.json: `npx tsx infra/bin/app.ts`): `npm run synth`, `npm run deploy`.
 * Context: -c stage=dev|prod|… (default dev), -c compute=lambda|fargate (default lambda);
 * the others are in infra/lib/config.ts. See docs/deployment.md, "Deploy with the CDK".
 */
import '../../src/env.js'
import { App } from 'aws-cdk-lib'
import { defineInfra } from '../lib/app.js'

const app = new App()
await defineInfra(app)
app.synth()
