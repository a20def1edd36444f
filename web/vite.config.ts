// `npm run dev` serves the UI with hot reload and sends API calls to a gateway on
// 127.0.0.1:8080 (GATEWAY_URL to change it), so the pages talk to the suite same-origin.
import { sveltekit } from '@sveltejs/kit/vite';
import { defineConfig } from 'vite';

// Node's process, typed here rather than pulling in @types/node for one line.
declare const process: { env: Record<string, string | undefined> };
const gateway = process.env.GATEWAY_URL ?? 'http://127.0.0.1:8080';

export default defineConfig({
  plugins: [sveltekit()],
  server: {
    host: '127.0.0.1',
    // Connect paths are /<package>.<Service>/<Method>: a dot in the first segment.
    proxy: { '^/[a-z][a-z0-9_]*\\.[A-Za-z0-9_]+/': { target: gateway, changeOrigin: false } }
  },
  build: { assetsInlineLimit: 0, chunkSizeWarningLimit: 1024 }
});
