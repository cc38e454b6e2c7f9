// A span exporter that sends OTLP/HTTP JSON (@opentelemetry/exporter-trace-
// otlp-http) to url with an API key, and collects the error of every
// failed export in failures.
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';

export function collectingExporter(url, token, failures) {
  const inner = new OTLPTraceExporter({ url, headers: { Authorization: `Bearer ${token}` } });
  return {
    export(spans, done) {
      inner.export(spans, (result) => {
        if (result.code !== 0) failures.push(String(result.error));
        done(result);
      });
    },
    shutdown() { return inner.shutdown(); },
    forceFlush() { return inner.forceFlush(); },
  };
}
