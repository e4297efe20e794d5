import path from "node:path";

/** Real sample photos and models live beside the project in ../shared (never committed here). */
const sharedDir = path.resolve("..", "shared");
export const imagesDir = path.join(sharedDir, "images");
export const modelsDir = process.env.BATCHWISE_MODELS_DIR ?? path.join(sharedDir, "models");
export const image = (name: string) => path.join(imagesDir, name);
export const fixture = (name: string) => path.resolve("test", "fixtures", name);
