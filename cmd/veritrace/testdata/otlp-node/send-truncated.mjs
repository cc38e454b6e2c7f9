// Sends two GenAI spans in one batch with the OpenTelemetry JS SDK and its
// OTLP/HTTP JSON exporter, with an attribute value length limit (as
// OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT sets) that cuts an emoji in one span's
// output in half. Prints {"traceId", "failures"}: the trace id and the
// export errors, if any.
import { context, trace } from '@opentelemetry/api';
import { collectingExporter } from './exporter.mjs';
import { TracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { resourceFromAttributes } from '@opentelemetry/resources';

const url = process.env.VERITRACE_OTLP_TRACES_URL;
const token = process.env.VERITRACE_API_KEY;
if (!url || !token) {
  console.error('set VERITRACE_OTLP_TRACES_URL and VERITRACE_API_KEY');
  process.exit(2);
}
const answer = 'It arrives tomorrow \u{1F600} have a nice day';
const failures = [];
const exporter = collectingExporter(url, token, failures);
const provider = new TracerProvider({
  resource: resourceFromAttributes({ 'service.name': 'node-support-agent' }),
  spanLimits: { attributeValueLengthLimit: answer.indexOf('\u{1F600}') + 1 },
  spanProcessors: [new BatchSpanProcessor({ exporter })],
});
const tracer = provider.getTracer('veritrace-node-test', '1.0.0');
const agent = tracer.startSpan('invoke_agent support', {
  attributes: { 'gen_ai.operation.name': 'invoke_agent', 'user.id': 'node-user-2' },
});
const chat = tracer.startSpan('chat gpt-4o-mini', {
  attributes: {
    'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'gpt-4o-mini', 'user.id': 'node-user-2',
    'gen_ai.completion.0.content': answer,
  },
}, trace.setSpan(context.active(), agent));
chat.end();
agent.end();
try {
  await provider.forceFlush();
  await provider.shutdown();
} catch (err) {
  failures.push(String(err));
}
console.log(JSON.stringify({ traceId: agent.spanContext().traceId, failures }));
