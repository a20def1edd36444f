// The UI is a static single-page app: every path falls back to index.html and the client
// routes it (the gateway serves the build with the same fallback).
import adapter from '@sveltejs/adapter-static';
import { vitePreprocess } from '@sveltejs/vite-plugin-svelte';

/** @type {import('@sveltejs/kit').Config} */
const config = {
  preprocess: vitePreprocess(),
  kit: {
    adapter: adapter({ pages: 'build', assets: 'build', fallback: 'index.html', strict: true }),
    alias: { $gen: 'src/gen' },
    // Nothing from another origin: scripts, styles and fonts are all in the build.
    // Inline style attributes (SvelteKit's route announcer) are allowed; scripts are not.
    csp: {
      mode: 'hash',
      directives: { 'default-src': ['self'], 'style-src': ['self', 'unsafe-inline'], 'object-src': ['none'] }
    }
  }
};

export default config;
