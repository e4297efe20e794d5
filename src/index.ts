/** The public surface of batchwise. */
export * from "./api.js";
export { createServer, serve, type BatchwiseServer, type ServerOptions, type ListenOptions } from "./server/server.js";
export type { EndpointOptions } from "./server/endpoint.js";
export { HttpError, errors } from "./server/errors.js";
export { plainSpec, type Spec, type SpecResponse } from "./server/spec.js";
export { availableCores, resolveAccelerator } from "./runtime/device.js";
