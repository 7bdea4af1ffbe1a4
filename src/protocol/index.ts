export * from './error-codes.js';
export * from './methods.js';
export * from './path-uri.js';
export * from './validation.js';
export * from './session.js';
export * from './process.js';
export * from './fs.js';
export * from './http.js';
