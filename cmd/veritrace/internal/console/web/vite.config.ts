import { defineConfig } from "vitest/config";

// The console is built into ../dist, which the Go package embeds; CI
// rebuilds it into a temporary directory and fails if it differs from the
// committed build (.ci/console). Nothing in the build depends on the time
// or the machine.
export default defineConfig({
  base: "/ui/",
  esbuild: { jsx: "automatic", jsxImportSource: "preact", legalComments: "none" },
  build: {
    outDir: "../dist",
    emptyOutDir: true,
    target: "es2022",
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
    reportCompressedSize: false,
    chunkSizeWarningLimit: 1024,
  },
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
  },
});
