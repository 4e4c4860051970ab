// @libsql/client (Node) against skylite over http:// (Hrana over HTTP, /v2/pipeline).
// The scenarios themselves live in client_scenarios.mjs and run over ws:// too (ws.test.mjs).
import { defineClientScenarios } from "./client_scenarios.mjs";

const URL = process.env.SKYLITE_TEST_URL;
if (!URL) throw new Error("SKYLITE_TEST_URL is not set; run the suite through scripts/test.sh");

defineClientScenarios(URL, "@libsql/client over http://");
