// Starts Swagger UI on the service's OpenAPI document. A file of its own
// rather than an inline script: the Content-Security-Policy allows only
// same-origin script files. Paths are relative to the page (/docs), so the
// page also works behind a proxy that mounts the service under a prefix.
'use strict';
window.ui = SwaggerUIBundle({
  url: 'docs/json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  // No badge from the public validator service: the page makes no outside requests.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: 'StandaloneLayout',
});
