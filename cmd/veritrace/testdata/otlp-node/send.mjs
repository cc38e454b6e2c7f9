// Sends a GenAI agent trace to Veritrace with the OpenTelemetry JS SDK and
// its OTLP/HTTP JSON exporter, then prints the trace id. Fails (exit 1) if
// any export fails.
import { context, trace, SpanStatusCode } from '@opentelemetry/api';
import { collectingExporter } from './exporter.mjs';
import { TracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';

const url = process.env.VERITRACE_OTLP_TRACES_URL;
const token = process.env.VERITRACE_API_KEY;
if (!url || !token) {
  console.error('set VERITRACE_OTLP_TRACES_URL and VERITRACE_API_KEY');
  process.exit(2);
}
const failures = [];
const exporter = collectingExporter(url, token, failures);
const provider = new TracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-support-agent' }),
  spanProcessors: [new SimpleSpanProcessor({ exporter })],
});
const tracer = provider.getTracer('veritrace-node-test', '1.0.0');

const agent = tracer.startSpan('invoke_agent support', {
  attributes: { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'support', 'user.id': 'node-user-1', 'session.id': 'node-session-1' },
});
const inAgent = trace.setSpan(context.active(), agent);
const failed = tracer.startSpan('chat gpt-4o', {
  attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o', 'user.id': 'node-user-1' },
}, inAgent);
failed.recordException({ name: 'RateLimitError', message: '429 Too Many Requests' });
failed.setStatus({ code: SpanStatusCode.ERROR, message: 'rate limited' });
failed.end();
const chat = tracer.startSpan('chat gpt-4o-mini', {
  attributes: {
    'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o-mini',
    'gen_ai.usage.input_tokens': 42, 'gen_ai.usage.output_tokens': 7, 'user.id': 'node-user-1',
    'gen_ai.input.messages': JSON.stringify([{ role: 'user', parts: [{ type: 'text', content: 'Where is my parcel?' }] }]),
    'gen_ai.output.messages': JSON.stringify([{ role: 'assistant', parts: [{ type: 'text', content: 'It arrives tomorrow.' }], finish_reason: 'stop' }]),
  },
}, inAgent);
chat.end();
agent.end();
try {
  await provider.forceFlush();
  await provider.shutdown();
} catch (err) {
  failures.push(String(err));
}
if (failures.length > 0) {
  console.error('export failed:', failures.join('; '));
  process.exit(1);
}
console.log(agent.spanContext().traceId);
